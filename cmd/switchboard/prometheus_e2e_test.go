package main

// The Prometheus end-to-end test: a real Prometheus scrapes `switchboard
// dev`, the nats CLI drives traffic, and the figures, the dashboard's
// queries and the alerting rules are checked through Prometheus's HTTP
// API, as an operator's Grafana and Alertmanager would see them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/natsauth"
	notifcontract "github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/services/users/contract"
)

const (
	prometheusInstallHint = "apt-get install prometheus"
	dashboardFile         = "../../deploy/observability/switchboard-dashboard.json"
	alertsFile            = "../../deploy/observability/alerts.yml"
	observabilityDoc      = "../../docs/observability.md"
)

// promServer is a Prometheus started for one test.
type promServer struct {
	url string
}

// startPrometheus starts Prometheus scraping target (host:port) every
// second and evaluating the rules of alertsFile every second.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	requireTool(t, "prometheus", prometheusInstallHint)
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: switchboard
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out := &syncBuffer{}
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	p := &promServer{url: "http://" + addr}
	testkit.Eventually(t, readyTimeout, 50*time.Millisecond, func() error {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", out)
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	str, _ := s.Value[1].(string)
	v, _ := strconv.ParseFloat(str, 64)
	return v
}

// api GETs path?params from Prometheus's HTTP API and decodes its data.
func (p *promServer) api(path string, params url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, params, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// query evaluates q now and returns its instant vector; an error for a
// query Prometheus refuses.
func (p *promServer) query(q string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v []sample
		err := json.Unmarshal(data.Result, &v)
		return v, err
	case "scalar":
		var s [2]any
		err := json.Unmarshal(data.Result, &s)
		return []sample{{Value: s}}, err
	}
	return nil, fmt.Errorf("%s: result type %s", q, data.ResultType)
}

// value is the single value of q, or an error when q has none or many.
func (p *promServer) value(q string) (float64, error) {
	v, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("%s: %d samples, want 1: %v", q, len(v), v)
	}
	return v[0].value(), nil
}

// wantValue polls until q has the value want.
func (p *promServer) wantValue(t *testing.T, q string, want float64) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		got, err := p.value(q)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s = %v, want %v", q, got, want)
		}
		return nil
	})
}

// selectors are the metric selectors in a PromQL expression: every one
// must match series, or the expression is watching nothing.
var selectorPattern = regexp.MustCompile(`\b(switchboard_[a-z_]+)(\{[^}]*\})?`)

func selectors(expr string) []string {
	var out []string
	for _, m := range selectorPattern.FindAllString(expr, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// dashboardQueries returns the expr of every target of every panel of
// the dashboard, with Grafana's variables replaced as Grafana would.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "30s", "$__range", "5m", "$__interval", "5s", "$service", ".+")
	out := map[string]string{}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("%s [%d]", p.Title, i)] = vars.Replace(tg.Expr)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s has %d queries; is it the dashboard?", dashboardFile, len(out))
	}
	return out
}

func TestE2EPrometheus(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary")
	}
	requireTool(t, "nats", natsInstallHint)
	requireTool(t, "prometheus", prometheusInstallHint)
	redis := cachetest.StartRedis(t)

	// A webhook receiver that holds every POST until released, so that
	// the delivery consumer's lag can be seen.
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(recv.Close)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	dataDir := t.TempDir()
	sb := startProcess(t, "dev", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--gateway-listen", "127.0.0.1:0", "--log-format", "json", "--redis-url", "redis://"+redis.Addr)
	u, err := url.Parse(sb.opsURL)
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, u.Host)
	nurl := sb.natsURL

	natsReq[map[string]any](t, nurl, "notifications.webhooks.put", fmt.Sprintf(`{"id":"held","url":%q,"secret":"whsec_ZTJlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm","subjects":["users.events.>"]}`, recv.URL))
	heldConsumer := notifcontract.Consumer("held")
	const users = 12
	var first contract.User
	for i := range users {
		u, _ := natsReq[contract.User](t, nurl, "users.create", fmt.Sprintf(`{"name":"User %d","email":"user%d@example.com","age":30}`, i, i))
		if u.ID == "" {
			t.Fatalf("users.create replied %+v", u)
		}
		if i == 0 {
			first = u
		}
	}
	natsCLI(t, nurl, "req", "users.create", `{"name":""}`) // 400
	const gets = 3
	for range gets {
		natsReq[contract.User](t, nurl, "users.get", fmt.Sprintf(`{"id":%q}`, first.ID))
	}
	// A deadline already past: 504, without the handler running.
	natsCLI(t, nurl, "req", "-H", "Switchboard-Deadline: 2000-01-01T00:00:00Z", "users.get", fmt.Sprintf(`{"id":%q}`, first.ID))
	// orders calls users.get: a client call, and one more cache hit.
	natsReq[map[string]any](t, nurl, "orders.create", fmt.Sprintf(`{"user_id":%q,"items":[{"sku":"book-1","quantity":1,"unit_price_cents":100}],"currency":"EUR"}`, first.ID))

	// Request counts by code, and the latency histogram.
	prom.wantValue(t, `switchboard_requests_total{service="users",endpoint="create",code="200"}`, users)
	prom.wantValue(t, `switchboard_requests_total{service="users",endpoint="create",code="400"}`, 1)
	prom.wantValue(t, `switchboard_requests_total{service="users",endpoint="get",code="504"}`, 1)
	prom.wantValue(t, `sum(switchboard_requests_total{service="users",endpoint="get"})`, gets+2)
	prom.wantValue(t, `switchboard_request_duration_seconds_count{service="users",endpoint="create"}`, users+1)
	prom.wantValue(t, `switchboard_request_duration_seconds_bucket{service="users",endpoint="create",le="+Inf"}`, users+1)
	prom.wantValue(t, `switchboard_client_requests_total{caller="orders",subject="users.get",code="200"}`, 1)
	// The local cache answered every get of the user created here.
	prom.wantValue(t, `switchboard_cache_lookups_total{cache="users",layer="local",result="hit"}`, gets+1)
	// The held webhook: its consumer holds workers+prefetch (8) tasks (its
	// handlers have not finished, so the adaptive prefetch is at workers),
	// the other 4 wait in the stream.
	prom.wantValue(t, `switchboard_consumer_ack_pending_messages{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, 8)
	prom.wantValue(t, `switchboard_consumer_pending_messages{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, users-8)
	prom.wantValue(t, `switchboard_consumer_in_flight_messages{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, 4)
	prom.wantValue(t, `switchboard_consumer_held_messages{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, 8)
	close(release)
	released = true
	prom.wantValue(t, `switchboard_webhook_deliveries_total{outcome="delivered"}`, users)
	prom.wantValue(t, `switchboard_consumer_pending_messages{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, 0)
	prom.wantValue(t, `switchboard_consumer_acks_total{stream="NOTIFICATIONS",consumer="`+heldConsumer+`"}`, users)

	// A poison event is dead-lettered, and the alert says so. Only the
	// users identity may publish user events: it is published with its
	// nkey from the data dir.
	natsCLI(t, nurl.as(filepath.Join(natsauth.KeyDir(dataDir), natsauth.KeyFile("users"))), "pub", poisonSubject, "not json")
	prom.wantValue(t, `switchboard_consumer_dead_letters_total{stream="USERS",consumer="orders-on-user-events",reason="undecodable"}`, 1)
	// One connection per service identity, each connected: users,
	// orders, notifications and the gateway.
	prom.wantValue(t, `count(switchboard_nats_connected{connection=~"users|orders|notifications|gateway"} == 1)`, 4)
	prom.wantValue(t, `count(go_goroutines) + count(process_cpu_seconds_total)`, 2)

	// Every query of the dashboard returns data, and every metric it
	// selects has series.
	for name, q := range dashboardQueries(t) {
		testkit.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
			v, err := prom.query(q)
			if err != nil {
				return fmt.Errorf("dashboard panel %s: %w", name, err)
			}
			if len(v) == 0 {
				return fmt.Errorf("dashboard panel %s: no data for %s", name, q)
			}
			for _, sel := range selectors(q) {
				if v, err := prom.query(sel); err != nil || len(v) == 0 {
					return fmt.Errorf("dashboard panel %s: selector %s matches nothing (%v)", name, sel, err)
				}
			}
			return nil
		})
	}

	// Every alerting rule loaded and evaluates without error, every metric
	// it selects has series, and the dead letter fired its alert.
	type rule struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		State     string `json:"state"`
	}
	testkit.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		var data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.api("/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
			return err
		}
		var rules []rule
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		if len(rules) < 8 {
			return fmt.Errorf("%d alerting rules loaded, want the 8 of %s", len(rules), alertsFile)
		}
		var errs []error
		for _, r := range rules {
			if r.Health != "ok" {
				errs = append(errs, fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError))
			}
			for _, sel := range selectors(r.Query) {
				if v, err := prom.query(sel); err != nil || len(v) == 0 {
					errs = append(errs, fmt.Errorf("rule %s: selector %s matches nothing (%v)", r.Name, sel, err))
				}
			}
			if r.Name == "SwitchboardDeadLetters" && r.State != "firing" {
				errs = append(errs, fmt.Errorf("rule %s is %s, want firing after a dead letter", r.Name, r.State))
			}
		}
		return errors.Join(errs...)
	})

	// Every metric switchboard exports is documented.
	doc, err := os.ReadFile(observabilityDoc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := prom.api("/api/v1/label/__name__/values", url.Values{}, &names); err != nil {
		t.Fatal(err)
	}
	documented := 0
	for _, n := range names {
		if !strings.HasPrefix(n, "switchboard_") {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(base, "_seconds") {
				n = base
			}
		}
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("metric %s is not documented in %s", n, observabilityDoc)
		}
		documented++
	}
	if documented < 30 {
		t.Errorf("only %d switchboard metrics exported: %v", documented, names)
	}
	sb.stop(t, os.Interrupt)
}
