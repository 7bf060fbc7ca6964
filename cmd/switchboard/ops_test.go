package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// hangingService is a service whose readiness check never answers on its
// own; it records the deadline it was given.
type hangingService struct{ deadline chan time.Time }

func (h hangingService) Name() string                   { return "hanging" }
func (h hangingService) Err() error                     { return nil }
func (h hangingService) Stop(ctx context.Context) error { return nil }
func (h hangingService) Ready(ctx context.Context) error {
	d, _ := ctx.Deadline()
	h.deadline <- d
	<-ctx.Done()
	return ctx.Err()
}

// A check that does not answer is bounded by readyBudget, whatever the
// probe's own timeout, and /readyz says why it is unready.
func TestReadyzBoundsEachCheck(t *testing.T) {
	srv := embeddedtest.Start(t, t.TempDir())
	nc := embeddedtest.Connect(t, srv, "ops")
	h := hangingService{deadline: make(chan time.Time, 2)}
	hs := httptest.NewServer(opsHandler(slog.New(slog.DiscardHandler), []*nats.Conn{nc}, nil, func() []service { return []service{h, h} }, prometheus.NewRegistry(), false))
	t.Cleanup(hs.Close)
	start := time.Now()
	code, body, err := getJSON(t.Context(), hs.URL+"/readyz")
	if err != nil || code != 503 {
		t.Fatalf("GET /readyz = %d %v %v, want 503", code, body, err)
	}
	for range 2 {
		d := <-h.deadline
		if d.IsZero() || d.After(start.Add(readyBudget+100*time.Millisecond)) {
			t.Fatalf("a check was given deadline %v, %v after the request: want at most the %v budget", d, d.Sub(start), readyBudget)
		}
	}
	if reasons := fmt.Sprint(body["reasons"]); !strings.Contains(reasons, "no answer within") {
		t.Fatalf("reasons %s: want them to say the check did not answer", reasons)
	}
}

// Without stream quorum, users answers 503 or 504 (retry later), never
// 500; /readyz says unavailable at once, naming the stream; once the
// nodes are back, both recover on their own.
func TestQuorumLossIsUnavailableNotAnError(t *testing.T) {
	cl := embeddedtest.StartCluster(t, 3)
	r3 := messaging.Replication{Replicas: 3} // every replica on every node, as --stream-replicas 3
	svcConn := cl.Connect("users")
	svc, err := users.Start(context.Background(), svcConn, users.Options{Replication: r3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	hs := httptest.NewServer(opsHandler(slog.New(slog.DiscardHandler), []*nats.Conn{svcConn}, nil, func() []service { return []service{svc} }, prometheus.NewRegistry(), false))
	t.Cleanup(hs.Close)
	c, err := messaging.NewClient(cl.Connect("client"), messaging.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u, err := contract.CreateUser(ctx, c, contract.CreateRequest{Name: "Ada", Email: "ada@example.com", Age: ptr(36)})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := getJSON(ctx, hs.URL+"/readyz"); err != nil || code != 200 {
		t.Fatalf("/readyz before = %d %v %v", code, body, err)
	}

	survivor := cl.StreamLeader(contract.Stream)
	for i := range cl.Size() {
		if i != survivor {
			cl.Stop(i)
		}
	}
	// Until the users connection has noticed its node is gone and moved
	// to the survivor, /readyz says "nats: RECONNECTING"; wait for that
	// move (its status alone can still read CONNECTED to a stopped node).
	survivorURL := cl.Node(survivor).ClientURL()
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if svcConn.Status() != nats.CONNECTED || svcConn.ConnectedUrl() != survivorURL {
			return fmt.Errorf("users not reconnected to the surviving node %s (status %v, on %s)", survivorURL, svcConn.Status(), svcConn.ConnectedUrl())
		}
		return nil
	})
	start := time.Now()
	code, body, err := getJSON(ctx, hs.URL+"/readyz")
	t.Logf("/readyz without quorum answered in %v: %d %v", time.Since(start), code, body)
	if err != nil || code != 503 || !strings.Contains(fmt.Sprint(body["reasons"]), "stream USERS") {
		t.Fatalf("/readyz without quorum = %d %v %v, want 503 naming stream USERS", code, body, err)
	}
	// A read may still be answered by the old leader (no other node can
	// have taken writes); a write cannot be stored. Neither is a 500.
	_, err = contract.GetUser(ctx, c, contract.GetRequest{ID: u.ID})
	if code := wire.CodeOf(err); code != 0 && code != wire.CodeUnavailable && code != wire.CodeDeadlineExceeded {
		t.Fatalf("a read without quorum: %v (code %d), want success, 503 or 504", err, code)
	}
	_, err = contract.CreateUser(ctx, c, contract.CreateRequest{Name: "Grace", Email: "grace@example.com", Age: ptr(85)})
	if code := wire.CodeOf(err); code != wire.CodeUnavailable && code != wire.CodeDeadlineExceeded {
		t.Fatalf("a write without quorum: %v (code %d), want 503 or 504", err, code)
	}

	for i := range cl.Size() {
		if i != survivor {
			cl.Start(i)
		}
	}
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if code, body, err := getJSON(ctx, hs.URL+"/readyz"); err != nil || code != 200 {
			return fmt.Errorf("/readyz = %d %v %v", code, body, err)
		}
		got, err := contract.GetUser(ctx, c, contract.GetRequest{ID: u.ID})
		if err != nil || got.Email != u.Email {
			return fmt.Errorf("get after recovery: %+v, %v", got, err)
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// A collector that fails does not take /metrics down: the other metrics
// are served, and the failure is logged at error level with the metrics
// component.
func TestMetricsLogsAFailingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := prometheus.NewCounter(prometheus.CounterOpts{Name: "still_served_total", Help: "served beside a broken collector"})
	reg.MustRegister(ok, brokenCollector{})
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	hs := httptest.NewServer(opsHandler(logger, nil, nil, func() []service { return nil }, reg, false))
	t.Cleanup(hs.Close)
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "still_served_total 0") {
		t.Fatalf("GET /metrics = %d %q (%v), want 200 with still_served_total", resp.StatusCode, body, err)
	}
	got := logs.String()
	if !strings.Contains(got, "collector broke") || !strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, `"component":"metrics"`) {
		t.Fatalf("log %q: want the collector's error at ERROR with component=metrics", got)
	}
}

// brokenCollector fails every collection.
type brokenCollector struct{}

var brokenDesc = prometheus.NewDesc("broken", "always fails", nil, nil)

func (brokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- brokenDesc }

func (brokenCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(brokenDesc, errors.New("collector broke"))
}
