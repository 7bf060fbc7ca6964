package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/services/gateway/gatewaytest"
	"github.com/devloop/switchboard/wire"
)

func TestRoutesFromDiscovery(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{})
	got := routesOf(t, hs.URL)
	want := []string{
		"POST /v1/echo -> things.echo",
		"POST /v1/fail -> things.fail",
		"POST /v1/slow -> things.slow",
		"GET /v1/things -> things.list",
		"POST /v1/things -> things.create",
		// No route declared: the default one. "hidden" is not served.
		"POST /v1/things/plain -> things.plain",
		"GET /v1/things/special -> things.special",
		"GET /v1/things/{id} -> things.get",
		"PATCH /v1/things/{id} -> things.rename",
		"DELETE /v1/things/{id} -> things.empty",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{})

	t.Run("body", func(t *testing.T) {
		var th Thing
		do(t, "POST", hs.URL+"/v1/things", `{"name":"box","count":3}`).want200(t, &th)
		if th.ID != "t1" || th.Name != "box" || th.Count != 3 {
			t.Errorf("created %+v", th)
		}
	})
	t.Run("path and query parameters take the schema's types", func(t *testing.T) {
		var th Thing
		do(t, "GET", hs.URL+"/v1/things/a%20b?verbose=true", "").want200(t, &th)
		if th.ID != "a b" || !th.Verbose {
			t.Errorf("got %+v, want id %q (unescaped) and verbose", th, "a b")
		}
		var l listReply
		do(t, "GET", hs.URL+"/v1/things?limit=5&tags=x&tags=y&empty=", "").want200(t, &l)
		if l.Limit != 5 || !slices.Equal(l.Things[0].Tags, []string{"x", "y"}) {
			t.Errorf("list got limit %d tags %q, want 5 [x y]", l.Limit, l.Things[0].Tags)
		}
	})
	t.Run("a literal segment beats a parameter", func(t *testing.T) {
		var th Thing
		do(t, "GET", hs.URL+"/v1/things/special", "").want200(t, &th)
		if th.ID != "special" {
			t.Errorf("GET /v1/things/special reached %+v", th)
		}
	})
	t.Run("path and body together", func(t *testing.T) {
		var th Thing
		do(t, "PATCH", hs.URL+"/v1/things/t9", `{"name":"new"}`).want200(t, &th)
		if th.ID != "t9" || th.Name != "new" {
			t.Errorf("renamed %+v", th)
		}
		// Repeating the path's value in the body is fine; contradicting it is not.
		do(t, "PATCH", hs.URL+"/v1/things/t9", `{"id":"t9","name":"new"}`).want200(t, &th)
		p := do(t, "PATCH", hs.URL+"/v1/things/t9", `{"id":"t8","name":"new"}`).problem(t, 400)
		if len(p.Errors) != 1 || p.Errors[0].Field != "id" {
			t.Errorf("contradicting body: %+v", p)
		}
	})
	t.Run("an empty reply is a 204", func(t *testing.T) {
		r := do(t, "DELETE", hs.URL+"/v1/things/t1", "")
		if r.StatusCode != http.StatusNoContent || len(r.body) != 0 {
			t.Errorf("DELETE: %d %q, want 204 and no body", r.StatusCode, r.body)
		}
	})
	t.Run("the default route", func(t *testing.T) {
		var th Thing
		do(t, "POST", hs.URL+"/v1/things/plain", "").want200(t, &th)
		if th.ID != "plain" {
			t.Errorf("plain returned %+v", th)
		}
	})
	t.Run("headers pass through", func(t *testing.T) {
		var e echoed
		r := do(t, "POST", hs.URL+"/v1/echo", "{}",
			wire.HeaderIdempotencyKey, "key-1",
			"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tracestate", "congo=t61rcWkgMzE",
			wire.HeaderRequestID, "req-42",
			"Authorization", "Bearer not-forwarded",
			gateway.HeaderTimeout, "1500ms")
		r.want200(t, &e)
		// The key reaches the service scoped to the caller (here the
		// anonymous one): callers cannot share keys.
		if k := e.Header[wire.HeaderIdempotencyKey]; !strings.HasSuffix(k, ":key-1") || len(k) != len(":key-1")+16 {
			t.Errorf("service got Idempotency-Key %q, want a caller scope and key-1", k)
		}
		for k, v := range map[string]string{
			"traceparent":        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tracestate":         "congo=t61rcWkgMzE",
			wire.HeaderRequestID: "req-42",
		} {
			if e.Header[k] != v {
				t.Errorf("service got %s = %q, want %q (headers %v)", k, e.Header[k], v, e.Header)
			}
		}
		if _, ok := e.Header["Authorization"]; ok {
			t.Error("the Authorization header reached the service")
		}
		if e.RequestID != "req-42" || r.Header.Get(wire.HeaderRequestID) != "req-42" {
			t.Errorf("request id: service %q, response header %q, want req-42", e.RequestID, r.Header.Get(wire.HeaderRequestID))
		}
		if !e.HasDeadline || e.Remaining > 1.5 || e.Remaining < 0.5 {
			t.Errorf("service deadline in %.3fs, want about 1.5s from Switchboard-Timeout", e.Remaining)
		}
	})
	t.Run("X-Request-Id is taken, a bad one replaced", func(t *testing.T) {
		var e echoed
		do(t, "POST", hs.URL+"/v1/echo", "", gateway.HeaderXRequestID, "abc-123").want200(t, &e)
		if e.RequestID != "abc-123" {
			t.Errorf("request id %q, want abc-123", e.RequestID)
		}
		r := do(t, "POST", hs.URL+"/v1/echo", "", wire.HeaderRequestID, "bad id\twith spaces")
		r.want200(t, &e)
		if e.RequestID == "" || strings.ContainsAny(e.RequestID, " \t") || r.Header.Get(wire.HeaderRequestID) != e.RequestID {
			t.Errorf("request id %q, header %q: want a fresh one", e.RequestID, r.Header.Get(wire.HeaderRequestID))
		}
	})
	t.Run("the default and the capped deadline", func(t *testing.T) {
		var e echoed
		do(t, "POST", hs.URL+"/v1/echo", "").want200(t, &e)
		if e.Remaining > gateway.DefaultTimeout.Seconds() || e.Remaining < gateway.DefaultTimeout.Seconds()-2 {
			t.Errorf("deadline in %.3fs, want the default %s", e.Remaining, gateway.DefaultTimeout)
		}
		do(t, "POST", hs.URL+"/v1/echo", "", gateway.HeaderTimeout, "1h").want200(t, &e)
		// The service caps it too (messaging.DefaultTimeout); the gateway's
		// cap is DefaultMaxTimeout, which is not later than that.
		if e.Remaining > gateway.DefaultMaxTimeout.Seconds() {
			t.Errorf("deadline in %.3fs, want at most %s", e.Remaining, gateway.DefaultMaxTimeout)
		}
		deadline := time.Now().Add(2 * time.Second)
		do(t, "POST", hs.URL+"/v1/echo", "", wire.HeaderDeadline, wire.FormatDeadline(deadline)).want200(t, &e)
		if e.Remaining > 2 || e.Remaining < 1 {
			t.Errorf("deadline in %.3fs, want about 2s from Switchboard-Deadline", e.Remaining)
		}
	})
}

// Every wire code reaches HTTP as its status with a problem+json body;
// 429 and 503 say when to retry.
func TestErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{})

	for _, code := range []int{400, 404, 409, 413, 422, 429, 500, 503, 504} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			r := do(t, "POST", hs.URL+"/v1/fail", fmt.Sprintf(`{"code":%d}`, code))
			p := r.problem(t, code)
			if p.Code != code {
				t.Errorf("problem code %d, want %d", p.Code, code)
			}
			switch code {
			case 400:
				if len(p.Errors) != 1 || p.Errors[0] != (wire.Detail{Field: "code", Message: "is 400"}) {
					t.Errorf("400 errors %+v", p.Errors)
				}
			case 500:
				if p.Detail != "internal error" {
					t.Errorf("500 detail %q: an uncoded error's text must stay in the service", p.Detail)
				}
			}
			if ra := r.Header.Get("Retry-After"); (code == 429 || code == 503) != (ra != "") {
				t.Errorf("%d: Retry-After %q", code, ra)
			}
		})
	}
	t.Run("a code HTTP does not have is a 502", func(t *testing.T) {
		p := do(t, "POST", hs.URL+"/v1/fail", `{"code":1000}`).problem(t, 502)
		if p.Code != 1000 {
			t.Errorf("problem code %d, want the service's 1000", p.Code)
		}
	})
	t.Run("the service's field errors", func(t *testing.T) {
		p := do(t, "POST", hs.URL+"/v1/things", `{"name":""}`).problem(t, 400)
		var fields []string
		for _, d := range p.Errors {
			fields = append(fields, d.Field)
		}
		if !slices.Equal(fields, []string{"name", "count"}) {
			t.Errorf("fields %q, want name and count", fields)
		}
		p = do(t, "GET", hs.URL+"/v1/things?limit=ten", "").problem(t, 400)
		if len(p.Errors) != 1 || p.Errors[0].Field != "limit" || !strings.Contains(p.Errors[0].Message, "must be an integer") {
			t.Errorf("?limit=ten: %+v", p)
		}
		p = do(t, "GET", hs.URL+"/v1/things?colour=red", "").problem(t, 400)
		if len(p.Errors) != 1 || p.Errors[0] != (wire.Detail{Field: "colour", Message: "unknown field"}) {
			t.Errorf("?colour=red: %+v", p)
		}
		p = do(t, "POST", hs.URL+"/v1/things", `{"name":`).problem(t, 400)
		if !strings.Contains(p.Detail, "malformed JSON") {
			t.Errorf("malformed body: %+v", p)
		}
	})
	t.Run("404 for a thing the service does not have", func(t *testing.T) {
		p := do(t, "GET", hs.URL+"/v1/things/missing", "").problem(t, 404)
		if p.Detail != `thing "missing": not found` {
			t.Errorf("detail %q", p.Detail)
		}
	})
	t.Run("404 for a path no route has", func(t *testing.T) {
		do(t, "GET", hs.URL+"/v1/nothing/here", "").problem(t, 404)
	})
	t.Run("405 with Allow", func(t *testing.T) {
		r := do(t, "PUT", hs.URL+"/v1/things", "")
		r.problem(t, 405)
		if a := r.Header.Get("Allow"); a != "GET, POST" {
			t.Errorf("Allow %q, want GET, POST", a)
		}
	})
	t.Run("413 over the endpoint's max payload", func(t *testing.T) {
		p := do(t, "POST", hs.URL+"/v1/things", `{"name":"`+strings.Repeat("x", 300)+`","count":1}`).problem(t, 413)
		if !strings.Contains(p.Detail, "256 bytes") {
			t.Errorf("detail %q, want the endpoint's limit", p.Detail)
		}
	})
	t.Run("415 for a body that is not JSON", func(t *testing.T) {
		do(t, "POST", hs.URL+"/v1/things", `name=box`, "Content-Type", "application/x-www-form-urlencoded").problem(t, 415)
	})
	t.Run("400 for a bad deadline header", func(t *testing.T) {
		do(t, "POST", hs.URL+"/v1/echo", "", gateway.HeaderTimeout, "soon").problem(t, 400)
		do(t, "POST", hs.URL+"/v1/echo", "", wire.HeaderDeadline, "tomorrow").problem(t, 400)
	})
	t.Run("504 when the deadline passes", func(t *testing.T) {
		r := do(t, "POST", hs.URL+"/v1/slow", "", gateway.HeaderTimeout, "100ms")
		r.problem(t, 504)
	})
}

// A route whose service is gone (before discovery notices) is a 503 with
// Retry-After: NATS has no responders.
func TestNoResponders(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	svc := w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{Refresh: time.Hour})
	stop(t, svc)
	r := do(t, "GET", hs.URL+"/v1/things/t1", "")
	p := r.problem(t, 503)
	if r.Header.Get("Retry-After") != "1" || !strings.Contains(p.Detail, "no service answers on things.get") {
		t.Errorf("Retry-After %q, problem %+v", r.Header.Get("Retry-After"), p)
	}
	// The no-responders reply made the gateway look again: the route goes.
	eventually(t, func() error {
		if rs := routesOf(t, hs.URL); len(rs) != 0 {
			return fmt.Errorf("routes still %q", rs)
		}
		return nil
	})
}

// Services that start and stop after the gateway come and go from the
// routes and the OpenAPI document, without a restart.
func TestDiscoveryFollowsServices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, hs := w.gateway(gateway.Options{Refresh: 100 * time.Millisecond})
	if rs := routesOf(t, hs.URL); len(rs) != 0 {
		t.Fatalf("routes before any service: %q", rs)
	}
	svc := w.startThings("1.0.0", nil)
	eventually(t, func() error {
		if !slices.Contains(routesOf(t, hs.URL), "GET /v1/things/{id} -> things.get") {
			return fmt.Errorf("things.get not routed")
		}
		if !strings.Contains(string(do(t, "GET", hs.URL+"/openapi.json", "").body), `"/v1/things/{id}"`) {
			return fmt.Errorf("not in /openapi.json")
		}
		return nil
	})
	stop(t, svc)
	eventually(t, func() error {
		if rs := routesOf(t, hs.URL); len(rs) != 0 {
			return fmt.Errorf("routes still %q", rs)
		}
		if strings.Contains(string(do(t, "GET", hs.URL+"/openapi.json", "").body), "/v1/things") {
			return fmt.Errorf("still in /openapi.json")
		}
		return nil
	})
}

// A request for a route discovery has not seen yet makes the gateway
// look again before it says 404.
func TestUnknownRouteLooksAgain(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, hs := w.gateway(gateway.Options{Refresh: time.Hour})
	w.startThings("1.0.0", nil)
	var th Thing
	do(t, "GET", hs.URL+"/v1/things/t1", "").want200(t, &th)
}

// Instances and versions of one service are merged: each route once, with
// every version that serves it, its schema from the highest version.
func TestVersionsAndInstances(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	w.startThings("1.0.0", nil) // a replica
	type v2Get struct {
		ID    string `json:"id"`
		Color string `json:"color,omitempty"`
	}
	w.service(messaging.ServiceConfig{Name: "things", Version: "1.10.0"},
		messaging.Typed("get", func(_ context.Context, r v2Get) (Thing, error) { return Thing{ID: r.ID, Name: "v2"}, nil },
			messaging.WithHTTP("GET /v1/things/{id}")),
		messaging.Typed("archive", func(_ context.Context, r getThing) (Thing, error) { return Thing{ID: r.ID}, nil },
			messaging.WithHTTP("POST /v1/things/{id}/archive")))
	g, hs := w.gateway(gateway.Options{})
	rs := g.Routes()
	byPath := map[string]gateway.RouteInfo{}
	for _, r := range rs.Routes {
		byPath[r.Method+" "+r.Path] = r
	}
	get := byPath["GET /v1/things/{id}"]
	if !slices.Equal(get.Versions, []string{"1.10.0", "1.0.0"}) || get.Instances != 3 {
		t.Errorf("things.get: versions %q, instances %d; want [1.10.0 1.0.0] and 3", get.Versions, get.Instances)
	}
	if a := byPath["POST /v1/things/{id}/archive"]; !slices.Equal(a.Versions, []string{"1.10.0"}) || a.Instances != 1 {
		t.Errorf("things.archive: %+v", a)
	}
	if c := byPath["POST /v1/things"]; !slices.Equal(c.Versions, []string{"1.0.0"}) || c.Instances != 2 {
		t.Errorf("things.create: %+v", c)
	}
	if len(rs.Services) != 1 || rs.Services[0].Instances != 3 || !slices.Equal(rs.Services[0].Versions, []string{"1.10.0", "1.0.0"}) {
		t.Errorf("services %+v", rs.Services)
	}
	// The highest version's schema documents (and converts) the route.
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, In string }
		}
	}
	if err := json.Unmarshal(do(t, "GET", hs.URL+"/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, p := range doc.Paths["/v1/things/{id}"]["get"].Parameters {
		params = append(params, p.In+":"+p.Name)
	}
	if !slices.Equal(params, []string{"path:id", "query:color"}) {
		t.Errorf("GET /v1/things/{id} parameters %q, want v1.10.0's path:id and query:color", params)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	svc := w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{Version: "1.2.3"})
	r := do(t, "GET", hs.URL+"/openapi.json", "")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	doc := gatewaytest.Validate(t, r.body)

	// Every endpoint announced through micro that is not hidden is in it.
	var parsed struct {
		Info  struct{ Version string }
		Paths map[string]map[string]struct {
			Subject string `json:"x-nats-subject"`
		}
	}
	if err := json.Unmarshal(r.body, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Info.Version != "1.2.3" {
		t.Errorf("info.version %q", parsed.Info.Version)
	}
	inDoc := map[string]bool{}
	for _, ops := range parsed.Paths {
		for _, op := range ops {
			inDoc[op.Subject] = true
		}
	}
	for _, ep := range svc.Info().Endpoints {
		if hidden := ep.Metadata[messaging.MetadataHTTP] == messaging.HTTPHidden; inDoc[ep.Subject] == hidden {
			t.Errorf("endpoint %s (hidden %v): in the document %v", ep.Subject, hidden, inDoc[ep.Subject])
		}
	}

	// Real exchanges, errors included, match the document.
	for _, x := range []struct{ method, path, body string }{
		{"POST", "/v1/things", `{"name":"box","count":3}`},
		{"POST", "/v1/things", `{"name":""}`},
		{"GET", "/v1/things/t1?verbose=true", ""},
		{"GET", "/v1/things/missing", ""},
		{"GET", "/v1/things?limit=3&tags=a", ""},
		{"PATCH", "/v1/things/t1", `{"name":"n"}`},
		{"POST", "/v1/fail", `{"code":409}`},
		{"POST", "/v1/fail", `{"code":503}`},
	} {
		req, err := http.NewRequestWithContext(t.Context(), x.method, hs.URL+x.path, strings.NewReader(x.body))
		if err != nil {
			t.Fatal(err)
		}
		if x.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		doc.CheckExchange(t, req, []byte(x.body), resp)
		resp.Body.Close()
	}
}

// The document of a gateway with no services, and of one with auth, is
// valid too.
func TestOpenAPIEmptyAndSecured(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, hs := w.gateway(gateway.Options{})
	gatewaytest.Validate(t, do(t, "GET", hs.URL+"/openapi.json", "").body)

	auth, err := gateway.NewAPIKeyAuth(map[string]string{"ci": "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	w.startThings("1.0.0", nil)
	_, hs = w.gateway(gateway.Options{Auth: auth})
	body := do(t, "GET", hs.URL+"/openapi.json", "").body
	gatewaytest.Validate(t, body)
	if !strings.Contains(string(body), `"securitySchemes"`) || !strings.Contains(string(body), `"X-API-Key"`) {
		t.Errorf("a secured gateway's document has no apiKey security scheme:\n%s", body)
	}
}

// Two services on one subject (NATS lets them share it) still make a
// valid document: operation ids stay unique.
func TestOpenAPITwoServicesOneSubject(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, name := range []string{"alpha", "beta"} {
		w.service(messaging.ServiceConfig{Name: name, Version: "1.0.0"},
			messaging.Typed("get", func(context.Context, struct{}) (Thing, error) { return Thing{ID: name}, nil },
				messaging.WithSubject("shared.get"), messaging.WithHTTP("GET /v1/"+name)))
	}
	_, hs := w.gateway(gateway.Options{})
	if got := routesOf(t, hs.URL); !slices.Equal(got, []string{"GET /v1/alpha -> shared.get", "GET /v1/beta -> shared.get"}) {
		t.Errorf("routes %q", got)
	}
	gatewaytest.Validate(t, do(t, "GET", hs.URL+"/openapi.json", "").body)
}
