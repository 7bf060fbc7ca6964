package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/services/gateway/gatewaytest"
	"github.com/devloop/switchboard/wire"
)

const (
	waitFor      = 10 * time.Second
	pollInterval = 20 * time.Millisecond
)

// world is one test's embedded server; services and gateways get
// connections of their own on it.
type world struct {
	t   *testing.T
	srv *embedded.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{t: t, srv: embeddedtest.Start(t, t.TempDir())}
}

func (w *world) conn(name string) *nats.Conn {
	return embeddedtest.Connect(w.t, w.srv, w.t.Name()+"/"+name)
}

// gateway starts a gateway over a connection of its own and serves it
// with httptest; both stop when the test ends.
func (w *world) gateway(opts gateway.Options) (*gateway.Gateway, *httptest.Server) {
	w.t.Helper()
	g, err := gateway.New(context.Background(), w.conn("gateway"), opts)
	if err != nil {
		w.t.Fatalf("gateway.New: %v", err)
	}
	hs := httptest.NewServer(g)
	w.t.Cleanup(func() {
		hs.Close()
		g.Close()
	})
	return g, hs
}

// service starts a messaging service, stopped when the test ends (stop
// may be called earlier).
func (w *world) service(cfg messaging.ServiceConfig, eps ...messaging.Endpoint) *messaging.Service {
	w.t.Helper()
	svc, err := messaging.NewService(w.conn(cfg.Name+"-"+cfg.Version), cfg, eps...)
	if err != nil {
		w.t.Fatalf("start service %s: %v", cfg.Name, err)
	}
	w.t.Cleanup(func() { stop(w.t, svc) })
	return svc
}

func stop(t *testing.T, svc *messaging.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := svc.Stop(ctx); err != nil {
		t.Errorf("stop %s: %v", svc.Name(), err)
	}
}

// Thing is the test service's entity.
type Thing struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Count   int      `json:"count"`
	Verbose bool     `json:"verbose,omitempty"`
	Tags    []string `json:"tags,omitempty"`
}

type createThing struct {
	Name  string `json:"name" jsonschema:"minLength=1"`
	Count *int   `json:"count"`
}

func (r createThing) Validate() error {
	var v wire.Violations
	if r.Name == "" {
		v.Add("name", "is required")
	}
	if r.Count == nil {
		v.Add("count", "is required")
	}
	return v.Err()
}

type getThing struct {
	ID      string `json:"id"`
	Verbose bool   `json:"verbose,omitempty"`
}

type listThings struct {
	Limit int      `json:"limit,omitempty" jsonschema:"minimum=1,maximum=10"`
	Tags  []string `json:"tags,omitempty"`
}

type listReply struct {
	Things []Thing `json:"things"`
	Limit  int     `json:"limit"`
}

type renameThing struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type failRequest struct {
	Code int `json:"code"`
}

// echoed is what the echo endpoint says it received.
type echoed struct {
	Header      map[string]string `json:"header"`
	HasDeadline bool              `json:"has_deadline"`
	Remaining   float64           `json:"remaining_seconds"`
	RequestID   string            `json:"request_id"`
}

// thingsEndpoints is a service exercising every way in: routes with path,
// query and body fields, a default route, a hidden endpoint, errors of
// every code, a slow endpoint and a header echo.
func thingsEndpoints(release <-chan struct{}) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("create", func(_ context.Context, r createThing) (Thing, error) {
			return Thing{ID: "t1", Name: r.Name, Count: *r.Count}, nil
		}, messaging.WithHTTP("POST /v1/things"), messaging.WithDescription("Create a thing."), messaging.WithMaxPayload(256)),
		messaging.Typed("get", func(_ context.Context, r getThing) (Thing, error) {
			if r.ID == "missing" {
				return Thing{}, fmt.Errorf("thing %q: %w", r.ID, wire.ErrNotFound)
			}
			return Thing{ID: r.ID, Name: "a thing", Verbose: r.Verbose}, nil
		}, messaging.WithHTTP("GET /v1/things/{id}")),
		messaging.Typed("special", func(context.Context, struct{}) (Thing, error) {
			return Thing{ID: "special"}, nil
		}, messaging.WithHTTP("GET /v1/things/special")),
		messaging.Typed("list", func(_ context.Context, r listThings) (listReply, error) {
			return listReply{Things: []Thing{{ID: "t1", Tags: r.Tags}}, Limit: r.Limit}, nil
		}, messaging.WithHTTP("GET /v1/things")),
		messaging.Typed("rename", func(_ context.Context, r renameThing) (Thing, error) {
			return Thing{ID: r.ID, Name: r.Name}, nil
		}, messaging.WithHTTP("PATCH /v1/things/{id}")),
		messaging.Typed("fail", func(_ context.Context, r failRequest) (struct{}, error) {
			switch r.Code {
			case 400:
				return struct{}{}, wire.NewError(400, "invalid request", wire.Detail{Field: "code", Message: "is 400"})
			case 500:
				return struct{}{}, errors.New("disk on fire") // uncoded: the text stays local
			}
			return struct{}{}, wire.NewError(r.Code, fmt.Sprintf("failed with %d as asked", r.Code))
		}, messaging.WithHTTP("POST /v1/fail")),
		messaging.Typed("slow", func(ctx context.Context, _ struct{}) (struct{}, error) {
			select {
			case <-ctx.Done():
				return struct{}{}, ctx.Err()
			case <-release:
				return struct{}{}, nil
			}
		}, messaging.WithHTTP("POST /v1/slow")),
		messaging.Typed("echo", func(ctx context.Context, _ struct{}) (echoed, error) {
			req, _ := messaging.RequestFromContext(ctx)
			out := echoed{Header: map[string]string{}, RequestID: wire.RequestID(ctx)}
			for k := range req.Header {
				out.Header[k] = req.Header.Get(k)
			}
			if d, ok := ctx.Deadline(); ok {
				out.HasDeadline, out.Remaining = true, time.Until(d).Seconds()
			}
			return out, nil
		}, messaging.WithHTTP("POST /v1/echo")),
		messaging.Raw("empty", messaging.HandlerFunc(func(context.Context, *messaging.Request) (*wire.Reply, error) {
			return &wire.Reply{}, nil
		}), messaging.WithHTTP("DELETE /v1/things/{id}")),
		messaging.Typed("plain", func(context.Context, struct{}) (Thing, error) { return Thing{ID: "plain"}, nil }),
		messaging.Typed("hidden", func(context.Context, struct{}) (Thing, error) { return Thing{}, nil }, messaging.WithHTTP(messaging.HTTPHidden)),
	}
}

// startThings starts the things service at version.
func (w *world) startThings(version string, release <-chan struct{}) *messaging.Service {
	return w.service(messaging.ServiceConfig{Name: "things", Version: version, Description: "Things for tests."}, thingsEndpoints(release)...)
}

// call makes one HTTP request and returns the response and its body.
type response struct {
	*http.Response
	body []byte
}

func do(t *testing.T, method, url, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, body: data}
}

// want200 decodes a 200 JSON reply into v.
func (r response) want200(t *testing.T, v any) {
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s, want 200", r.Request.Method, r.Request.URL, r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem checks an error response (gatewaytest.CheckProblem).
func (r response) problem(t *testing.T, wantStatus int) gateway.Problem {
	t.Helper()
	return gatewaytest.CheckProblem(t, r.Response, r.body, wantStatus)
}

// routesOf returns GET /routes as "METHOD path -> subject" lines.
func routesOf(t *testing.T, base string, header ...string) []string {
	t.Helper()
	var rs gateway.Routes
	do(t, "GET", base+"/routes", "", header...).want200(t, &rs)
	var out []string
	for _, r := range rs.Routes {
		out = append(out, r.Method+" "+r.Path+" -> "+r.Subject)
	}
	return out
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	testkit.Eventually(t, waitFor, pollInterval, f)
}

// statsOf asks $SRV.STATS of service name and returns its endpoints'.
func (w *world) statsOf(t *testing.T, name string) []*micro.EndpointStats {
	t.Helper()
	nc := w.conn("stats")
	defer nc.Close()
	msg, err := nc.Request("$SRV.STATS."+name, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("$SRV.STATS.%s: %v", name, err)
	}
	var st micro.Stats
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatal(err)
	}
	return st.Endpoints
}
