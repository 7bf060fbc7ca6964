package main

// End-to-end tests of the HTTP gateway: `switchboard dev` started with run,
// driven with a real HTTP client as a web or mobile client would, and
// checked against the OpenAPI document it serves.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/services/gateway/gatewaytest"
	orders "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

var gatewayLine = regexp.MustCompile(`(?m)^  gateway:   (\S+)`)

// gatewayURL is the gateway's URL from the ready banner.
func (in *instance) gatewayURL(t *testing.T) string {
	t.Helper()
	m := gatewayLine.FindStringSubmatch(in.stdout.String())
	if m == nil {
		t.Fatalf("no gateway line in the banner:\n%s", in.stdout)
	}
	return m[1]
}

// api is an HTTP client of one gateway that checks every exchange against
// the gateway's OpenAPI document.
type api struct {
	t    *testing.T
	base string
	doc  *gatewaytest.Document
}

func newAPI(t *testing.T, base string) *api {
	t.Helper()
	a := &api{t: t, base: base}
	a.doc = gatewaytest.Validate(t, a.openAPI())
	return a
}

// exchange is one request and its response.
type exchange struct {
	resp *http.Response
	body []byte
}

func (a *api) do(method, path, body string, header ...string) exchange {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if a.doc != nil {
		a.doc.CheckExchange(a.t, req, []byte(body), resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return exchange{resp: resp, body: data}
}

// raw is do without the document check, for what the document does not
// describe.
func (a *api) raw(method, path, body string) exchange {
	a.t.Helper()
	doc := a.doc
	a.doc = nil
	defer func() { a.doc = doc }()
	return a.do(method, path, body)
}

// openAPI returns the document the gateway serves now.
func (a *api) openAPI() []byte {
	a.t.Helper()
	x := a.raw("GET", "/openapi.json", "")
	if x.resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET /openapi.json: %d %s", x.resp.StatusCode, x.body)
	}
	return x.body
}

// ok decodes a 200 reply into T.
func ok[T any](t *testing.T, x exchange) T {
	t.Helper()
	var v T
	if x.resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s, want 200", x.resp.Request.Method, x.resp.Request.URL.Path, x.resp.StatusCode, x.body)
	}
	if err := json.Unmarshal(x.body, &v); err != nil {
		t.Fatalf("decode %s: %v", x.body, err)
	}
	return v
}

func (x exchange) problem(t *testing.T, status int) gateway.Problem {
	t.Helper()
	return gatewaytest.CheckProblem(t, x.resp, x.body, status)
}

// TestE2EGateway drives users and orders over HTTP through the gateway of
// `switchboard dev`: every operation, every error code, and a service
// that comes and goes.
func TestE2EGateway(t *testing.T) {
	t.Parallel()
	sb := startRun(t, devArgs(t.TempDir(), "--gateway-refresh", "200ms")...)
	sb.waitReady(t)
	a := newAPI(t, sb.gatewayURL(t))

	t.Run("the document has every endpoint announced through micro", func(t *testing.T) {
		body := a.openAPI()
		var doc struct {
			Paths map[string]map[string]struct {
				Subject string `json:"x-nats-subject"`
			}
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		inDoc := map[string]bool{}
		for _, ops := range doc.Paths {
			for _, op := range ops {
				inDoc[op.Subject] = true
			}
		}
		announced := microEndpoints(t, sb.natsURL)
		for _, subject := range []string{contract.SubjectCreate, orders.SubjectCancel, "notifications.webhooks.put"} {
			if !slices.Contains(announced, subject) {
				t.Errorf("$SRV.INFO does not announce %s: %q", subject, announced)
			}
		}
		for _, subject := range announced {
			if !inDoc[subject] {
				t.Errorf("%s is announced through micro but not in /openapi.json", subject)
			}
		}
	})

	// Users: create, get, update, list, delete.
	ada := ok[contract.User](t, a.do("POST", "/v1/users", `{"name":"Ada Lovelace","email":"ada@example.com","age":36}`))
	if ada.ID == "" || ada.Name != "Ada Lovelace" || ada.Version != 1 {
		t.Fatalf("created %+v", ada)
	}
	if got := ok[contract.User](t, a.do("GET", "/v1/users/"+ada.ID, "")); got != ada {
		t.Errorf("GET = %+v, want %+v", got, ada)
	}
	ada2 := ok[contract.User](t, a.do("PATCH", "/v1/users/"+ada.ID, `{"version":1,"age":37}`))
	if ada2.Age != 37 || ada2.Version != 2 {
		t.Errorf("PATCH = %+v", ada2)
	}
	grace := ok[contract.User](t, a.do("POST", "/v1/users", `{"name":"Grace Hopper","email":"grace@example.com","age":85}`, wire.HeaderIdempotencyKey, "signup-grace"))
	again := ok[contract.User](t, a.do("POST", "/v1/users", `{"name":"Grace Hopper","email":"grace@example.com","age":85}`, wire.HeaderIdempotencyKey, "signup-grace"))
	if again.ID != grace.ID {
		t.Errorf("a retry with the same Idempotency-Key created %s, want %s", again.ID, grace.ID)
	}
	page := ok[contract.ListResponse](t, a.do("GET", "/v1/users?limit=1", ""))
	if len(page.Users) != 1 || page.Users[0].ID != ada.ID || page.Next == "" {
		t.Fatalf("GET /v1/users?limit=1 = %+v", page)
	}
	page = ok[contract.ListResponse](t, a.do("GET", "/v1/users?limit=1&after="+page.Next, ""))
	if len(page.Users) != 1 || page.Users[0].ID != grace.ID {
		t.Errorf("second page = %+v", page)
	}

	// Orders: create, get, list, cancel.
	order := ok[orders.Order](t, a.do("POST", "/v1/orders", fmt.Sprintf(`{"user_id":%q,"items":[{"sku":"book-1","quantity":2,"unit_price_cents":1250}],"currency":"EUR"}`, ada.ID)))
	if order.TotalCents != 2500 || order.Status != orders.StatusPlaced {
		t.Fatalf("created %+v", order)
	}
	if got := ok[orders.Order](t, a.do("GET", "/v1/orders/"+order.ID, "")); got.ID != order.ID || got.Version != 1 {
		t.Errorf("GET order = %+v", got)
	}
	list := ok[orders.ListResponse](t, a.do("GET", "/v1/orders?user_id="+ada.ID, ""))
	if len(list.Orders) != 1 || list.Orders[0].ID != order.ID {
		t.Errorf("GET /v1/orders?user_id = %+v", list)
	}
	cancelled := ok[orders.Order](t, a.do("POST", "/v1/orders/"+order.ID+"/cancel", `{"version":1,"reason":"changed my mind"}`))
	if cancelled.Status != orders.StatusCancelled || cancelled.CancelReason != "changed my mind" {
		t.Errorf("cancelled %+v", cancelled)
	}

	// Errors the services make.
	t.Run("400 with field errors", func(t *testing.T) {
		p := a.do("POST", "/v1/users", `{"name":"","email":"x","age":200}`).problem(t, 400)
		var fields []string
		for _, d := range p.Errors {
			fields = append(fields, d.Field)
		}
		if !slices.Equal(fields, []string{"name", "email", "age"}) {
			t.Errorf("fields %q", fields)
		}
		p = a.do("GET", "/v1/orders?user_id="+ada.ID+"&limit=many", "").problem(t, 400)
		if len(p.Errors) != 1 || p.Errors[0].Field != "limit" {
			t.Errorf("?limit=many: %+v", p)
		}
	})
	t.Run("404", func(t *testing.T) {
		a.do("GET", "/v1/users/01ARZ3NDEKTSV4RRFFQ69G5FAV", "").problem(t, 404)
		a.raw("GET", "/v1/no/such/route", "").problem(t, 404)
	})
	t.Run("409 on a stale version", func(t *testing.T) {
		a.do("PATCH", "/v1/users/"+ada.ID, `{"version":1,"age":38}`).problem(t, 409)
	})
	t.Run("413 over the endpoint's limit", func(t *testing.T) {
		p := a.do("POST", "/v1/users", `{"name":"`+strings.Repeat("x", 20<<10)+`","email":"big@example.com","age":1}`).problem(t, 413)
		if !strings.Contains(p.Detail, "16384 bytes") {
			t.Errorf("detail %q, want users.create's limit", p.Detail)
		}
	})

	// A service of your own on dev's NATS needs an identity of its own
	// (docs/security.md): how the gateway routes, and stops routing, a
	// service that comes and goes is tested in services/gateway.

	// Users and orders are still served; delete Ada last.
	if got := ok[contract.DeleteResponse](t, a.do("DELETE", "/v1/users/"+ada.ID+"?version=2", "")); !got.Deleted {
		t.Errorf("DELETE = %+v", got)
	}
	a.do("GET", "/v1/users/"+ada.ID, "").problem(t, 404)

	if err := sb.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
}

// routed reports whether GET /routes lists route ("METHOD /path").
func routed(t *testing.T, a *api, route string) bool {
	t.Helper()
	x := a.raw("GET", "/routes", "")
	var rs gateway.Routes
	if err := json.Unmarshal(x.body, &rs); err != nil {
		t.Fatalf("GET /routes: %v\n%s", err, x.body)
	}
	for _, r := range rs.Routes {
		if r.Method+" "+r.Path == route {
			return true
		}
	}
	return false
}

// microEndpoints asks $SRV.INFO over url and returns every subject
// announced, but the gateway's own (it has none) and hidden ones.
func microEndpoints(t *testing.T, url natsTarget) []string {
	t.Helper()
	nkey, err := nats.NkeyOptionFromSeed(url.nkey)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url.url, nats.Name(t.Name()+"/info"), nkey)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(nc.NewRespInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.INFO", sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for {
		msg, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			break // no more replies
		}
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			t.Fatal(err)
		}
		for _, ep := range info.Endpoints {
			if ep.Metadata[messaging.MetadataHTTP] != messaging.HTTPHidden {
				subjects = append(subjects, ep.Subject)
			}
		}
	}
	slices.Sort(subjects)
	return subjects
}

// TestRunGatewayNeedsAuth: `run gateway` against a cluster refuses to
// serve everyone unless told to.
func TestRunGatewayNeedsAuth(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Start(t, t.TempDir())
	in := startRun(t, "run", "gateway", "--nats-url", srv.ClientURL(), "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json")
	err := in.wait(t)
	if err == nil || !strings.Contains(err.Error(), "gateway: no authentication configured") || !strings.Contains(err.Error(), "--gateway-auth none") {
		t.Fatalf("run gateway without auth: %v", err)
	}

	key := "ci-key-0123456789abcdef"
	in = startRun(t, "run", "gateway", "--nats-url", srv.ClientURL(), "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0",
		"--gateway-api-keys", "ci="+key, "--log-format", "json")
	in.waitReady(t)
	base := in.gatewayURL(t)
	for _, tt := range []struct {
		key  string
		want int
	}{{"", 401}, {key, 200}} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/routes", nil)
		if tt.key != "" {
			req.Header.Set(gateway.HeaderAPIKey, tt.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /routes with key %q: %d, want %d", tt.key, resp.StatusCode, tt.want)
		}
	}
	code, body, err := getJSON(t.Context(), in.opsURL+"/readyz")
	if err != nil || code != 200 {
		t.Errorf("ops /readyz: %d %v %v", code, body, err)
	}
	if svcs, _ := body["services"].(map[string]any); svcs["gateway"] != "ok" {
		t.Errorf("ops /readyz services %v, want gateway: ok", body["services"])
	}
	if err := in.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
}
