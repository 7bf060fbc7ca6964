package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/wire"
)

// DefaultTimeout is how long a handler may work on a request that carries no
// deadline of its own.
const DefaultTimeout = 30 * time.Second

// ErrStopped is returned by [Service.Err] once a service no longer serves.
var ErrStopped = errors.New("service stopped")

// ServiceConfig describes a service. The zero value of each optional field
// is a sensible default.
type ServiceConfig struct {
	// Name is the micro service name (letters, digits, - and _); it is also
	// the subject prefix: endpoint "get" of service "users" serves
	// "users.get".
	Name string
	// Version is a semantic version, e.g. "1.0.0".
	Version string
	// Description is shown by `nats micro info`.
	Description string
	// Metadata is shown by `nats micro info`.
	Metadata map[string]string
	// QueueGroup lets replicas share load; default micro's "q".
	QueueGroup string
	// Logger receives request and lifecycle logs, with service=<Name> added
	// to each (pass one without it); nil discards.
	Logger *slog.Logger
	// Telemetry counts and times the requests (docs/observability.md) and,
	// with tracing on, serves each in a span that continues the caller's
	// trace (traceparent and tracestate headers); nil does neither.
	Telemetry *telemetry.Telemetry
	// Middleware runs inside the built-in logging, recovery and deadline
	// middleware, first element outermost.
	Middleware []Middleware
	// Limits bound every endpoint (an endpoint's options may lower them).
	Limits Limits
	// Consumers are the service's JetStream consumers. Their health
	// (pending, ack pending, redelivered, dead-lettered) is the stats data
	// of an extra endpoint "<name>.consumers", which also answers it on
	// request, so `nats micro stats` and `nats req <name>.consumers ''`
	// show it.
	Consumers []*Consumer
	// ConsumerStats, when set, adds to Consumers the health of consumers
	// that come and go (a projector runs its consumers only while it
	// leads), by consumer name, in the same endpoint and stats data.
	ConsumerStats func(ctx context.Context) map[string]ConsumerStats
}

// Limits bound a service's endpoints. Zero fields take the defaults.
type Limits struct {
	// Timeout bounds a handler when the request carries no earlier
	// deadline (default DefaultTimeout).
	Timeout time.Duration
	// MaxConcurrency is how many requests one endpoint works on at once;
	// more are answered 503 (default DefaultMaxConcurrency).
	MaxConcurrency int
	// MaxPayload is the largest request an endpoint accepts; larger ones
	// are answered 413 (default DefaultMaxPayload).
	MaxPayload int
}

// replyHeadroom is what MaxReply leaves for a reply's headers.
const replyHeadroom = 4 << 10

// MaxReply is the largest reply payload nc can send: the server's max
// payload less room for headers. Endpoints that return lists bound their
// pages by it.
func MaxReply(nc *nats.Conn) int {
	return int(nc.MaxPayload()) - replyHeadroom
}

// Service is a running micro service whose endpoints run handlers
// concurrently, each endpoint bounded by its own limit.
type Service struct {
	cfg    ServiceConfig
	nc     *nats.Conn
	micro  micro.Service
	logger *slog.Logger
	eps    map[string]*endpoint // by subject
	tr     *tracing             // nil: tracing off

	// base is the parent of every handler context. A service is a server,
	// like http.Server with its BaseContext: cancelling base aborts the
	// handlers still running when a Stop runs out of time.
	base   context.Context
	cancel context.CancelFunc

	inflight  inflight
	stopping  atomic.Bool
	stopOnce  sync.Once
	stopErr   error
	unplanned atomic.Bool
}

type endpoint struct {
	name       string
	subject    string
	handler    Handler
	sem        chan struct{}
	work       chan *Request // to idle workers
	maxPayload int
	m          *endpointMetrics // nil: metrics off

	// data, when set, replaces the endpoint's stats data.
	data func() any

	handled, overload, tooLarge, nanos atomic.Uint64
	mu                                 sync.Mutex
	errors                             map[int]uint64
}

// EndpointStats is the "data" of an endpoint in `nats micro stats`. micro's
// own num_requests counts every request; its num_errors and processing
// times only see the requests refused before dispatch (413, 503), because
// handlers run on their own goroutines. These figures are the whole picture.
type EndpointStats struct {
	InFlight         int               `json:"in_flight"`
	MaxConcurrency   int               `json:"max_concurrency"`
	MaxPayload       int               `json:"max_payload"`
	Handled          uint64            `json:"handled"`
	ErrorsByCode     map[string]uint64 `json:"errors_by_code,omitempty"`
	RejectedOverload uint64            `json:"rejected_overload"`
	RejectedTooLarge uint64            `json:"rejected_too_large"`
	AverageHandling  time.Duration     `json:"average_handling_ns"`
}

// NewService validates cfg and routes, then starts a micro service on nc
// with one endpoint per route. Handlers of a route run concurrently, up to
// its concurrency limit.
func NewService(nc *nats.Conn, cfg ServiceConfig, routes ...Endpoint) (*Service, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	lim := &cfg.Limits
	if lim.MaxPayload == 0 {
		lim.MaxPayload = DefaultMaxPayload
	}
	if lim.MaxConcurrency == 0 {
		lim.MaxConcurrency = DefaultMaxConcurrency
	}
	if lim.Timeout == 0 {
		lim.Timeout = DefaultTimeout
	}
	switch {
	case lim.MaxPayload < 0:
		return nil, fmt.Errorf("%w: max payload %d", ErrInvalidOption, lim.MaxPayload)
	case lim.MaxConcurrency < 0:
		return nil, fmt.Errorf("%w: max concurrency %d", ErrInvalidOption, lim.MaxConcurrency)
	case lim.Timeout < 0:
		return nil, fmt.Errorf("%w: timeout %s", ErrInvalidOption, lim.Timeout)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, nc: nc, logger: logger.With(slog.String("service", cfg.Name)), eps: map[string]*endpoint{}, tr: newTracing(cfg.Telemetry)}
	metrics := newServiceMetrics(cfg.Telemetry)
	s.base, s.cancel = context.WithCancel(context.Background())

	hasConsumers := len(cfg.Consumers) > 0 || cfg.ConsumerStats != nil
	if hasConsumers {
		routes = append(routes, consumersRoute(cfg))
	}
	mw := append([]Middleware{Logging(logger), Recover(), Deadline(cfg.Limits.Timeout)}, cfg.Middleware...)
	for _, r := range routes {
		if r.err != nil {
			s.cancel()
			return nil, r.err
		}
		ep := &endpoint{
			name:       r.name,
			subject:    r.opts.subject,
			handler:    Chain(r.handler, mw...),
			maxPayload: orDefault(r.opts.maxPayload, cfg.Limits.MaxPayload),
			m:          metrics.endpoint(cfg.Name, r.name),
			errors:     map[int]uint64{},
		}
		if ep.subject == "" {
			ep.subject = cfg.Name + "." + r.name
		}
		ep.sem = make(chan struct{}, orDefault(r.opts.maxConcurrency, cfg.Limits.MaxConcurrency))
		ep.work = make(chan *Request)
		if r.name == consumersEndpoint && hasConsumers {
			ep.data = func() any { return consumerStats(cfg) }
		}
		if _, dup := s.eps[ep.subject]; dup {
			s.cancel()
			return nil, fmt.Errorf("%w: two endpoints on subject %q", ErrInvalidOption, ep.subject)
		}
		s.eps[ep.subject] = ep
	}

	svc, err := micro.AddService(nc, micro.Config{
		Name:         cfg.Name,
		Version:      cfg.Version,
		Description:  cfg.Description,
		Metadata:     cfg.Metadata,
		QueueGroup:   cfg.QueueGroup,
		StatsHandler: s.stats,
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			// A slow consumer lands here. micro no longer stops the
			// service for it, and our dispatch never blocks, so this
			// is worth a warning, not an outage.
			s.logger.Warn("subscription error", slog.String("subject", err.Subject), slog.String("error", err.Description))
		},
		DoneHandler: func(micro.Service) {
			if !s.stopping.Load() {
				s.unplanned.Store(true)
				s.logger.Error("service stopped unexpectedly (connection closed?)")
			}
		},
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("start service %s: %w", cfg.Name, err)
	}
	s.micro = svc
	for _, r := range routes {
		ep := s.eps[subjectOf(cfg.Name, r)]
		md := map[string]string{
			"max_payload":     strconv.Itoa(ep.maxPayload),
			"max_concurrency": strconv.Itoa(cap(ep.sem)),
		}
		if r.opts.description != "" {
			md["description"] = r.opts.description
		}
		for k, v := range r.opts.metadata {
			md[k] = v
		}
		if err := svc.AddEndpoint(r.name, s.dispatch(ep), micro.WithEndpointSubject(ep.subject), micro.WithEndpointMetadata(md)); err != nil {
			_ = s.Stop(context.Background())
			return nil, fmt.Errorf("service %s: add endpoint %s: %w", cfg.Name, r.name, err)
		}
	}
	// micro subscribes without waiting for the server: one round trip
	// makes sure requests from other connections find the endpoints once
	// NewService returns, instead of an early "no responders".
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		_ = s.Stop(context.Background())
		return nil, fmt.Errorf("service %s: wait for the server to register its endpoints: %w", cfg.Name, err)
	}
	s.logger.Info("service started", slog.String("version", cfg.Version), slog.Int("endpoints", len(routes)))
	return s, nil
}

func subjectOf(service string, r Endpoint) string {
	if r.opts.subject != "" {
		return r.opts.subject
	}
	return service + "." + r.name
}

// orDefault is v when set (> 0), else def.
func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// dispatch is micro's handler for ep. micro calls it on the subscription's
// single delivery goroutine, so it must never block: it refuses what it
// cannot take at once (413, 503) and hands the rest to a goroutine.
func (s *Service) dispatch(ep *endpoint) micro.HandlerFunc {
	return func(mr micro.Request) {
		req := &Request{
			Service:  s.cfg.Name,
			Endpoint: ep.name,
			Subject:  mr.Subject(),
			Header:   nats.Header(mr.Headers()),
			Data:     mr.Data(),
			Received: time.Now(),
			Reply:    mr.Reply(),
		}
		if len(req.Data) > ep.maxPayload {
			ep.tooLarge.Add(1)
			if ep.m != nil {
				ep.m.refusedWith("too_large", wire.CodeTooLarge)
			}
			e := wire.NewError(wire.CodeTooLarge, fmt.Sprintf("payload of %d bytes is over this endpoint's limit of %d bytes", len(req.Data), ep.maxPayload))
			s.refuse(mr, e)
			return
		}
		select {
		case ep.sem <- struct{}{}:
		default:
			ep.overload.Add(1)
			if ep.m != nil {
				ep.m.refusedWith("overloaded", wire.CodeUnavailable)
			}
			s.refuse(mr, wire.NewError(wire.CodeUnavailable, fmt.Sprintf("overloaded: %d requests in flight on %s; retry later", cap(ep.sem), ep.subject)))
			return
		}
		s.inflight.add()
		// An idle worker takes it; else a new one starts, and stays for
		// the requests after it. A worker's stack has grown to what the
		// handlers need, so requests do not pay for growing a new one.
		select {
		case ep.work <- req:
		default:
			go s.worker(ep, req)
		}
	}
}

// workerIdle is how long a worker waits for a request before it ends.
const workerIdle = 30 * time.Second

// worker serves req, then the requests handed to it, until none comes for
// workerIdle. Workers never outnumber the endpoint's concurrency limit:
// every request they serve holds a place in ep.sem.
func (s *Service) worker(ep *endpoint, req *Request) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.serve(ep, req)
		idle.Reset(workerIdle)
		select {
		case req = <-ep.work:
		case <-idle.C:
			return
		case <-s.base.Done():
			return
		}
	}
}

// serve runs one request through the endpoint's handler chain and replies.
// With tracing on, the handler runs in a server span that continues the
// caller's trace.
func (s *Service) serve(ep *endpoint, req *Request) {
	defer s.inflight.done()
	defer func() { <-ep.sem }()
	ctx := s.base
	var span trace.Span
	if s.tr != nil {
		ctx, span = s.startSpan(ctx, ep, req)
	}
	if ep.m != nil {
		ep.m.inFlight.Inc()
	}
	resp, err := ep.handler.Serve(ctx, req)
	ep.handled.Add(1)
	code := 200
	if err != nil {
		e := wire.ErrorOf(err)
		code = e.Code
		ep.count(e.Code)
		s.respond(ep, req.Reply, errorMsg(e), e.Code)
	} else {
		code = s.respond(ep, req.Reply, &nats.Msg{Data: resp.Data, Header: nats.Header(resp.Header)}, code)
	}
	took := time.Since(req.Received)
	ep.nanos.Add(uint64(took))
	if ep.m != nil {
		ep.m.inFlight.Dec()
		ep.m.answered(code)
		ep.m.duration.Observe(took.Seconds())
		if err != nil && errors.As(err, new(panicError)) {
			ep.m.m.panics.WithLabelValues(s.cfg.Name, ep.name).Inc()
		}
	}
	if span != nil {
		endSpan(span, code, err)
	}
}

// startSpan starts the server span of req, a child of the caller's span
// when the request carries a traceparent.
func (s *Service) startSpan(ctx context.Context, ep *endpoint, req *Request) (context.Context, trace.Span) {
	ctx = s.tr.extract(ctx, req.Header)
	attrs := spanAttrs(
		semconv.RPCSystemNameKey.String("nats"),
		semconv.RPCMethod(ep.subject),
		semconv.MessagingDestinationName(req.Subject),
		attribute.String("switchboard.service", s.cfg.Name),
		attribute.String("switchboard.endpoint", ep.name),
	)
	if id := header(req.Header, wire.HeaderRequestID); id != "" {
		return s.tr.tracer.Start(ctx, ep.subject, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(req.Received), attrs,
			trace.WithAttributes(attribute.String("switchboard.request_id", id)))
	}
	return s.tr.tracer.Start(ctx, ep.subject, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(req.Received), attrs)
}

// count records an error reply of code.
func (ep *endpoint) count(code int) {
	ep.mu.Lock()
	ep.errors[code]++
	ep.mu.Unlock()
}

// refuse answers on micro's goroutine through micro, so that `nats micro
// stats` counts refusals as errors.
func (s *Service) refuse(mr micro.Request, e *wire.Error) {
	if mr.Reply() == "" {
		return
	}
	body, _ := json.Marshal(e)
	if err := mr.Error(strconv.Itoa(e.Code), headerSafe(e.Message), body); err != nil {
		s.logger.Warn("reply failed", slog.String("subject", mr.Subject()), slog.String("error", err.Error()))
	}
}

// respond publishes a reply of status code from a handler goroutine and
// returns the code it sent. It does not go through micro.Request, whose fields micro reads on
// its own goroutine. A reply too large for the connection becomes an error
// reply saying so (500), instead of a silence the caller would wait out.
func (s *Service) respond(ep *endpoint, reply string, msg *nats.Msg, code int) int {
	if reply == "" {
		return code // a publish, not a request: nobody waits for an answer
	}
	msg.Subject = reply
	err := s.nc.PublishMsg(msg)
	if errors.Is(err, nats.ErrMaxPayload) {
		s.logger.Error("reply too large for the connection", slog.String("subject", ep.subject),
			slog.Int("bytes", len(msg.Data)), slog.Int64("max_payload", s.nc.MaxPayload()))
		e := wire.NewError(wire.CodeInternal, fmt.Sprintf("the reply of %d bytes is larger than the server's max payload of %d bytes", len(msg.Data), s.nc.MaxPayload()))
		ep.count(e.Code)
		code = e.Code
		m := errorMsg(e)
		m.Subject = reply
		err = s.nc.PublishMsg(m)
	}
	if err != nil {
		s.logger.Warn("reply failed", slog.String("reply", reply), slog.String("error", err.Error()))
	}
	return code
}

func errorMsg(e *wire.Error) *nats.Msg {
	body, _ := json.Marshal(e)
	return &nats.Msg{
		Header: nats.Header{
			wire.HeaderErrorCode: []string{strconv.Itoa(e.Code)},
			wire.HeaderError:     []string{headerSafe(e.Message)},
		},
		Data: body,
	}
}

// headerSafe keeps a header value on one line.
func headerSafe(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

func (s *Service) stats(me *micro.Endpoint) any {
	ep, ok := s.eps[me.Subject]
	if !ok {
		return nil
	}
	if ep.data != nil {
		return ep.data()
	}
	st := EndpointStats{
		InFlight:         len(ep.sem),
		MaxConcurrency:   cap(ep.sem),
		MaxPayload:       ep.maxPayload,
		Handled:          ep.handled.Load(),
		RejectedOverload: ep.overload.Load(),
		RejectedTooLarge: ep.tooLarge.Load(),
	}
	if st.Handled > 0 {
		st.AverageHandling = time.Duration(ep.nanos.Load() / st.Handled)
	}
	ep.mu.Lock()
	if len(ep.errors) > 0 {
		st.ErrorsByCode = make(map[string]uint64, len(ep.errors))
		for code, n := range ep.errors {
			st.ErrorsByCode[strconv.Itoa(code)] = n
		}
	}
	ep.mu.Unlock()
	return st
}

// Name returns the service name.
func (s *Service) Name() string { return s.cfg.Name }

// Info returns the micro service info (id, endpoints, subjects, metadata).
func (s *Service) Info() micro.Info { return s.micro.Info() }

// Stats returns the micro service stats.
func (s *Service) Stats() micro.Stats { return s.micro.Stats() }

// Err returns nil while the service serves, and an error wrapping
// ErrStopped once it does not (after Stop, or when its connection closed).
func (s *Service) Err() error {
	switch {
	case s.unplanned.Load():
		return fmt.Errorf("%s: %w unexpectedly", s.cfg.Name, ErrStopped)
	case s.micro.Stopped():
		return fmt.Errorf("%s: %w", s.cfg.Name, ErrStopped)
	}
	return nil
}

// Stop stops taking requests and waits for the ones in flight to be answered.
// When ctx ends first, the handlers still running see their contexts
// cancelled and Stop returns ctx's error. Calling Stop again returns the
// first call's result.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Service) stop(ctx context.Context) error {
	s.stopping.Store(true)
	defer s.cancel()
	var errs []error
	if err := s.micro.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop %s: %w", s.cfg.Name, err))
	}
	// micro drains the endpoint subscriptions: the server stops sending
	// once it has our UNSUB, and requests already on their way are still
	// delivered. A flush round trip makes sure those have arrived, so the
	// wait below covers them.
	// Only when connected: a reconnecting connection would make the flush
	// wait out ctx for nothing, as nothing can arrive meanwhile.
	if s.nc.IsConnected() {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			fctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		}
		err := s.nc.FlushWithContext(fctx)
		cancel()
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("flush %s: %w", s.cfg.Name, err))
		}
	}
	if err := s.inflight.wait(ctx); err != nil {
		s.cancel()
		errs = append(errs, fmt.Errorf("stop %s: in-flight requests: %w", s.cfg.Name, err))
	}
	s.logger.Info("service stopped")
	return errors.Join(errs...)
}

// inflight counts running handlers. Unlike sync.WaitGroup it may go from
// zero to one while somebody waits, which happens when a draining
// subscription delivers a last request during Stop.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.idle)
	}
	f.mu.Unlock()
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// wait returns once no handler runs, or with ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	for {
		f.mu.Lock()
		if f.n == 0 {
			f.mu.Unlock()
			return nil
		}
		idle := f.idle
		f.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

const consumersEndpoint = "consumers"

// consumersRoute answers with the health of cfg's consumers, by name.
func consumersRoute(cfg ServiceConfig) Endpoint {
	return Typed(consumersEndpoint, func(context.Context, struct{}) (map[string]ConsumerStats, error) {
		return consumerStats(cfg), nil
	}, WithDescription("Health of this service's JetStream consumers (also in its stats data)."))
}

func consumerStats(cfg ServiceConfig) map[string]ConsumerStats {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out := make(map[string]ConsumerStats, len(cfg.Consumers))
	for _, c := range cfg.Consumers {
		out[c.Name()] = c.Stats(ctx)
	}
	if cfg.ConsumerStats != nil {
		for name, st := range cfg.ConsumerStats(ctx) {
			out[name] = st
		}
	}
	return out
}
