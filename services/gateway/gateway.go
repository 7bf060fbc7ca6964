package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/cors"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/wire"
)

// Defaults for [Options].
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxTimeout = 30 * time.Second
	DefaultMaxBody    = messaging.DefaultMaxPayload
	DefaultRefresh    = 2 * time.Second
)

// ErrInvalidOption is wrapped by New and Start given a bad option.
var ErrInvalidOption = errors.New("gateway: invalid option")

// Options configure a gateway. The zero value of each field is a sensible
// default; every caller is let in and not rate limited.
type Options struct {
	// Logger receives discovery events and one record per request (5xx
	// at Warn, the rest at Debug); nil discards.
	Logger *slog.Logger
	// Title and Version are the OpenAPI document's info (default
	// "Switchboard API", "dev").
	Title, Version string
	// Auth authenticates callers of the API and /routes; nil lets every
	// caller in. /docs, /openapi.json, /healthz and /readyz are open.
	Auth *Auth
	// RateLimit is how many requests per second each caller may make
	// (by Auth identity, else by client IP); 0 means no limit. RateBurst
	// is the bucket size (default twice RateLimit).
	RateLimit float64
	RateBurst int
	// MaxBody bounds a request body (default DefaultMaxBody); an
	// endpoint's own, lower max_payload bounds it further.
	MaxBody int64
	// CORSOrigins are the origins browsers may call from ("*" for any);
	// none means no CORS headers.
	CORSOrigins []string
	// Timeout is the deadline of a request that brings none (default
	// DefaultTimeout); MaxTimeout caps the one it brings (default
	// DefaultMaxTimeout).
	Timeout, MaxTimeout time.Duration
	// Refresh is how often the routes are rediscovered (default
	// DefaultRefresh).
	Refresh time.Duration
	// Telemetry measures the gateway's calls to the services
	// (caller="gateway") and, with tracing on, serves each HTTP request in
	// a span that continues the caller's traceparent, the parent of the
	// call's span; nil does neither.
	Telemetry *telemetry.Telemetry
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Title == "" {
		o.Title = "Switchboard API"
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxTimeout == 0 {
		o.MaxTimeout = max(DefaultMaxTimeout, o.Timeout)
	}
	if o.Refresh == 0 {
		o.Refresh = DefaultRefresh
	}
	switch {
	case o.MaxBody < 0:
		return fmt.Errorf("%w: max body %d", ErrInvalidOption, o.MaxBody)
	case o.Timeout < 0 || o.MaxTimeout < 0 || o.Timeout > o.MaxTimeout:
		return fmt.Errorf("%w: timeout %s, max timeout %s: want 0 < timeout ≤ max timeout", ErrInvalidOption, o.Timeout, o.MaxTimeout)
	case o.Refresh < 0:
		return fmt.Errorf("%w: refresh %s", ErrInvalidOption, o.Refresh)
	case o.RateLimit < 0 || o.RateBurst < 0:
		return fmt.Errorf("%w: rate limit %g, burst %d", ErrInvalidOption, o.RateLimit, o.RateBurst)
	}
	for _, origin := range o.CORSOrigins {
		if origin != "*" && !strings.Contains(origin, "://") {
			return fmt.Errorf("%w: CORS origin %q: want \"*\" or scheme://host[:port]", ErrInvalidOption, origin)
		}
	}
	return nil
}

// Gateway is the HTTP handler of the gateway. It discovers routes in the
// background from New until Close.
type Gateway struct {
	opts    Options
	client  *messaging.Client
	disc    *discovery
	limits  *limiters
	handler http.Handler
	docs    assets
	openapi atomic.Pointer[[]byte]
	nc      *nats.Conn
}

// New makes a gateway over nc. It runs a first discovery before it
// returns (bounded by ctx), so the routes of the services already running
// are served at once.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Gateway, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	// No session of its own: each HTTP caller brings its own positions
	// (Switchboard-After), as the services' replies give them.
	tel := opts.Telemetry.For("gateway")
	client, err := messaging.NewClient(nc, messaging.WithTimeout(opts.Timeout), messaging.WithoutSession(), messaging.WithTelemetry(tel))
	if err != nil {
		return nil, err
	}
	g := &Gateway{opts: opts, client: client, nc: nc, limits: newLimiters(opts.RateLimit, opts.RateBurst)}
	doc := docOptions{title: opts.Title, version: opts.Version, auth: opts.Auth}
	g.disc = newDiscovery(nc, opts.Refresh, opts.Logger, func(t *table) {
		data := openAPI(t, doc)
		g.openapi.Store(&data)
		if len(t.routes) > 0 {
			opts.Logger.Info("gateway: routes", slog.Int("routes", len(t.routes)), slog.Int("services", len(t.services)))
		}
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", g.serveOpenAPI)
	mux.HandleFunc("GET /docs", g.docs.serveDocs)
	mux.HandleFunc("GET /docs/", g.docs.serveDocs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.Handle("GET /routes", g.edge(http.HandlerFunc(g.serveRoutes)))
	mux.Handle("/", g.edge(http.HandlerFunc(g.serveAPI)))
	var h http.Handler = mux
	if len(opts.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: opts.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", HeaderAPIKey, wire.HeaderIdempotencyKey,
				wire.HeaderDeadline, HeaderTimeout, wire.HeaderRequestID, HeaderXRequestID, wire.HeaderAfter, "traceparent", "tracestate"},
			ExposedHeaders: []string{wire.HeaderRequestID, wire.HeaderSequence, wire.HeaderStream, "Retry-After"},
			MaxAge:         600,
		}).Handler(h)
	}
	g.handler = tel.Handler(h)
	g.disc.start(ctx)
	return g, nil
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Close stops discovery. It does not close the NATS connection.
func (g *Gateway) Close() { g.disc.close() }

// Ready is nil while the gateway can route: NATS is connected and
// discovery has succeeded lately.
func (g *Gateway) Ready() error {
	if st := g.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats: %s", st)
	}
	return g.disc.ready()
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyCaller
)

// edge runs what every API request goes through before it is routed: a
// request id, authentication and the rate limit.
func (g *Gateway) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID(r)
		w.Header().Set(wire.HeaderRequestID, id)
		caller := ""
		if g.opts.Auth != nil {
			who, err := g.opts.Auth.authenticate(r)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
				writeProblem(w, Problem{Status: http.StatusUnauthorized, Detail: err.Error(), RequestID: id})
				g.log(r, http.StatusUnauthorized, id, "", "", time.Now())
				return
			}
			caller = who
		}
		if g.limits != nil {
			key := caller
			if key == "" {
				key = "ip:" + clientIP(r)
			}
			if ok, wait := g.limits.allow(key, time.Now()); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
				writeProblem(w, Problem{Status: http.StatusTooManyRequests, RequestID: id,
					Detail: fmt.Sprintf("rate limit of %g requests per second exceeded; retry in %s", g.opts.RateLimit, wait.Round(time.Millisecond))})
				g.log(r, http.StatusTooManyRequests, id, caller, "", time.Now())
				return
			}
		}
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyCaller, caller)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveAPI forwards one request to its endpoint.
func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id, _ := r.Context().Value(keyRequestID).(string)
	caller, _ := r.Context().Value(keyCaller).(string)
	fail := func(e *wire.Error, subject string) {
		writeError(w, id, e)
		g.log(r, httpStatus(e.Code), id, caller, subject, start)
	}

	rt, params, allowed := g.disc.current().match(r.Method, r.URL.EscapedPath())
	if rt == nil && allowed == nil {
		// A service may have started since the last refresh: look
		// again before saying 404 (at most one refresh a second).
		ctx, cancel := context.WithTimeout(r.Context(), minKick+collectMax+firstReply)
		if g.disc.fresh(ctx) {
			rt, params, allowed = g.disc.current().match(r.Method, r.URL.EscapedPath())
		}
		cancel()
	}
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			fail(&wire.Error{Code: http.StatusMethodNotAllowed, Message: fmt.Sprintf("%s is not a method of %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))}, "")
			return
		}
		fail(wire.NewError(wire.CodeNotFound, fmt.Sprintf("no route for %s %s (GET /openapi.json lists them)", r.Method, r.URL.Path)), "")
		return
	}

	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetName(r.Method + " " + rt.http.Path)
		span.SetAttributes(semconv.HTTPRoute(rt.http.Path), semconv.RPCMethod(rt.subject))
	}
	dl, werr := deadline(r, start, g.opts.Timeout, g.opts.MaxTimeout)
	if werr != nil {
		fail(werr, rt.subject)
		return
	}
	limit := g.opts.MaxBody
	if rt.maxPayload > 0 && int64(rt.maxPayload) < limit {
		limit = int64(rt.maxPayload)
	}
	body, werr := readBody(w, r, limit)
	if werr != nil {
		fail(werr, rt.subject)
		return
	}
	data, werr := payload(rt, params, r.URL.Query(), body)
	if werr != nil {
		fail(werr, rt.subject)
		return
	}
	opts, werr := passHeaders(r)
	if werr != nil {
		fail(werr, rt.subject)
		return
	}

	ctx, cancel := context.WithDeadline(wire.WithRequestID(r.Context(), id), dl)
	defer cancel()
	reply, err := g.client.Call(ctx, rt.subject, data, opts...)
	if err != nil {
		e := callError(r.Context(), err)
		if e.Code == wire.CodeUnavailable && errors.Is(err, nats.ErrNoResponders) {
			g.disc.refreshSoon() // the service may be gone
		}
		fail(e, rt.subject)
		return
	}
	h := w.Header()
	if stream := reply.Header.Get(wire.HeaderStream); stream != "" {
		h.Set(wire.HeaderStream, stream)
	}
	if seq := reply.Header.Get(wire.HeaderSequence); seq != "" {
		h.Set(wire.HeaderSequence, seq)
	}
	if len(reply.Data) == 0 {
		w.WriteHeader(http.StatusNoContent)
		g.log(r, http.StatusNoContent, id, caller, rt.subject, start)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(reply.Data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(reply.Data)
	g.log(r, http.StatusOK, id, caller, rt.subject, start)
}

func (g *Gateway) log(r *http.Request, status int, id, caller, subject string, start time.Time) {
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	if !g.opts.Logger.Enabled(r.Context(), level) {
		return
	}
	g.opts.Logger.LogAttrs(r.Context(), level, "gateway request", append([]slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
		slog.String("subject", subject), slog.String("request_id", id), slog.String("caller", caller),
		slog.Duration("duration", time.Since(start))}, telemetry.LogAttrs(r.Context())...)...)
}

func (g *Gateway) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	data := *g.openapi.Load()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// RouteInfo is one route as GET /routes lists it.
type RouteInfo struct {
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	Subject     string   `json:"subject"`
	Service     string   `json:"service"`
	Endpoint    string   `json:"endpoint"`
	Declared    bool     `json:"declared"`
	Versions    []string `json:"versions"`
	Instances   int      `json:"instances"`
	MaxPayload  int      `json:"max_payload,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Routes is the body of GET /routes.
type Routes struct {
	Routes   []RouteInfo      `json:"routes"`
	Services []serviceSummary `json:"services"`
}

// Routes returns the routes served now.
func (g *Gateway) Routes() Routes {
	t := g.disc.current()
	out := Routes{Routes: []RouteInfo{}, Services: t.services}
	if out.Services == nil {
		out.Services = []serviceSummary{}
	}
	for _, r := range t.routes {
		out.Routes = append(out.Routes, RouteInfo{
			Method: r.http.Method, Path: r.http.Path, Subject: r.subject, Service: r.service, Endpoint: r.endpoint,
			Declared: r.declared, Versions: r.versions, Instances: r.instances, MaxPayload: r.maxPayload, Description: r.description,
		})
	}
	return out
}

func (g *Gateway) serveRoutes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, g.Routes())
}

func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := g.Ready(); err != nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func newID() string { return nuid.Next() }
