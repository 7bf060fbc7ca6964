package messaging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry/telemetrytest"
	"github.com/devloop/switchboard/wire"
)

// lockedBuffer collects log records written from other goroutines
// (handlers, connection callbacks).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records decodes the JSON records logged so far.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func (b *lockedBuffer) find(t *testing.T, msg string) map[string]any {
	t.Helper()
	for _, rec := range b.records(t) {
		if rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("no log record %q in %v", msg, b.records(t))
	return nil
}

func wantValue(t *testing.T, rec *telemetrytest.Recorder, want float64, name string, labels ...string) {
	t.Helper()
	got, err := rec.Value(name, labels...)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// remoteParent is a context carrying a caller's span, as a traceparent
// would bring it.
func remoteParent(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc), sc
}

func TestTelemetryRequests(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	rec := telemetrytest.New(t, true)
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	newService(t, nc, messaging.ServiceConfig{Name: "tele", Logger: logger, Telemetry: rec.For("tele"), Limits: messaging.Limits{MaxPayload: 64}},
		messaging.Typed("echo", func(ctx context.Context, req benchEcho) (benchEcho, error) {
			messaging.LoggerFrom(ctx).Info("inside echo")
			return req, nil
		}),
		messaging.Typed("fail", func(context.Context, struct{}) (struct{}, error) {
			return struct{}{}, wire.NewError(wire.CodeUnavailable, "down")
		}),
		messaging.Typed("boom", func(context.Context, struct{}) (struct{}, error) { panic("boom") }),
	)
	client := newClient(t, nc, messaging.WithTelemetry(rec.For("caller")))
	ctx, parent := remoteParent(t)

	if _, err := client.Call(ctx, "tele.echo", []byte(`{"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Call(ctx, "tele.fail", nil); !errorsIsUnavailable(err) {
		t.Fatalf("tele.fail: %v, want 503", err)
	}
	if _, err := client.Call(ctx, "tele.boom", nil); wire.CodeOf(err) != 500 {
		t.Fatalf("tele.boom: %v, want 500", err)
	}
	if _, err := client.Call(ctx, "tele.echo", bytes.Repeat([]byte(" "), 100)); wire.CodeOf(err) != 413 {
		t.Fatalf("large tele.echo: %v, want 413", err)
	}

	wantValue(t, rec, 1, "switchboard_requests_total", "service", "tele", "endpoint", "echo", "code", "200")
	wantValue(t, rec, 1, "switchboard_requests_total", "service", "tele", "endpoint", "echo", "code", "413")
	wantValue(t, rec, 1, "switchboard_requests_total", "service", "tele", "endpoint", "fail", "code", "503")
	wantValue(t, rec, 1, "switchboard_requests_total", "service", "tele", "endpoint", "boom", "code", "500")
	wantValue(t, rec, 1, "switchboard_request_panics_total", "service", "tele", "endpoint", "boom")
	wantValue(t, rec, 1, "switchboard_requests_refused_total", "service", "tele", "endpoint", "echo", "reason", "too_large")
	wantValue(t, rec, 1, "switchboard_request_duration_seconds", "service", "tele", "endpoint", "echo")
	wantValue(t, rec, 0, "switchboard_requests_in_flight", "service", "tele", "endpoint", "echo")
	wantValue(t, rec, 1, "switchboard_client_requests_total", "caller", "caller", "subject", "tele.echo", "code", "200")
	wantValue(t, rec, 1, "switchboard_client_requests_total", "caller", "caller", "subject", "tele.echo", "code", "413")
	wantValue(t, rec, 1, "switchboard_client_requests_total", "caller", "caller", "subject", "tele.fail", "code", "503")
	wantValue(t, rec, 2, "switchboard_client_request_duration_seconds", "caller", "caller", "subject", "tele.echo")

	// The client span continues the caller's trace; the server span is
	// its child.
	var client1, server1 trace.SpanContext
	for _, s := range rec.Spans() {
		if s.Name() == "tele.echo" && s.SpanKind() == trace.SpanKindClient && !client1.IsValid() {
			client1 = s.SpanContext()
			if s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() {
				t.Errorf("client span: parent %v, want the caller's %v", s.Parent(), parent)
			}
		}
	}
	for _, s := range rec.Spans() {
		if s.Name() == "tele.echo" && s.SpanKind() == trace.SpanKindServer && s.Parent().SpanID() == client1.SpanID() {
			server1 = s.SpanContext()
		}
	}
	if !client1.IsValid() || !server1.IsValid() {
		t.Fatalf("want a client span tele.echo and a server span, its child; spans: %v", rec.SpanNames())
	}
	if s, ok := rec.Span("tele.fail"); !ok || s.Status().Code.String() != "Error" {
		t.Errorf("tele.fail spans: want an error status; spans: %v", rec.SpanNames())
	}

	// Records inside the request and the request's own carry its trace.
	for _, msg := range []string{"inside echo", "request"} {
		r := logs.find(t, msg)
		if r["trace_id"] != parent.TraceID().String() || r["span_id"] != server1.SpanID().String() {
			t.Errorf("log record %q: trace_id %v span_id %v, want %s %s", msg, r["trace_id"], r["span_id"], parent.TraceID(), server1.SpanID())
		}
	}
}

func errorsIsUnavailable(err error) bool { return wire.CodeOf(err) == wire.CodeUnavailable }

// TestTelemetryTraceparentHeader: a request that carries a traceparent, as
// `nats req -H 'traceparent: …'` sends it, is served in a child span of
// it; without tracing, nothing is added to what a client sends.
func TestTelemetryTraceparentHeader(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	rec := telemetrytest.New(t, true)
	seen := make(chan nats.Header, 1)
	newService(t, nc, messaging.ServiceConfig{Name: "tele", Telemetry: rec.Telemetry},
		messaging.Typed("echo", func(ctx context.Context, req struct{}) (struct{}, error) { return req, nil }))
	m := nats.NewMsg("tele.echo")
	m.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s, ok := rec.Span("tele.echo")
	if !ok {
		t.Fatalf("no span tele.echo: %v", rec.SpanNames())
	}
	if s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" || !s.Parent().IsRemote() {
		t.Errorf("span parent = %+v, want the traceparent's", s.Parent())
	}

	// Metrics only, or nothing: no trace headers go out.
	sub, err := nc.Subscribe("plain.echo", func(m *nats.Msg) { seen <- m.Header; _ = m.Respond(nil) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	ctx, _ := remoteParent(t)
	for _, opts := range [][]messaging.ClientOption{nil, {messaging.WithTelemetry(telemetrytest.New(t, false).Telemetry)}} {
		if _, err := newClient(t, nc, opts...).Call(ctx, "plain.echo", nil); err != nil {
			t.Fatal(err)
		}
		if h := <-seen; h.Get("traceparent") != "" {
			t.Errorf("a client without tracing sent traceparent %q", h.Get("traceparent"))
		}
	}
}

// TestTelemetryEvents: a publish in a span carries its trace context; the
// consumer handles the event in a child span of the publish, counts it,
// and reports its lag and dead letters.
func TestTelemetryEvents(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js := eventsStream(t, nc)
	rec := telemetrytest.New(t, true)
	pub, err := messaging.NewPublisher(nc, messaging.WithPublishTelemetry(rec.For("pub")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := remoteParent(t)
	if _, err := pub.Publish(ctx, messaging.OutEvent{Subject: "events.thing", Type: "thing.made", Data: thing{N: 1}}); err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 2, 4)

	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	handled := make(chan trace.SpanContext, 4)
	gate := make(chan struct{})
	traced := consume(t, js, messaging.ConsumerConfig{Durable: "traced", Telemetry: rec.Telemetry, Logger: logger, Workers: 1, Prefetch: 1}, func(ctx context.Context, ev messaging.Event[thing]) error {
		if ev.Data.N == 1 {
			messaging.LoggerFrom(ctx).Info("inside handler")
			handled <- trace.SpanContextFromContext(ctx)
			<-gate
		}
		return nil
	})
	// One message in the handler, one held for it, one not delivered yet.
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		for m, want := range map[string]float64{
			"switchboard_consumer_pending_messages":     1,
			"switchboard_consumer_ack_pending_messages": 2,
			"switchboard_consumer_in_flight_messages":   1,
			"switchboard_consumer_held_messages":        2,
		} {
			if v, err := rec.Value(m, "stream", "EVENTS", "consumer", "traced"); err != nil || v != want {
				return fmt.Errorf("%s = %v (%v), want %v", m, v, err, want)
			}
		}
		return nil
	})
	close(gate)
	var got trace.SpanContext
	select {
	case got = <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not handled")
	}
	pubSpan, ok := rec.Span("publish thing.made")
	if !ok {
		t.Fatalf("no publish span: %v", rec.SpanNames())
	}
	if pubSpan.Parent().SpanID() != parent.SpanID() || pubSpan.SpanContext().TraceID() != parent.TraceID() {
		t.Errorf("publish span's parent %v, want %v", pubSpan.Parent(), parent)
	}
	var procSpan trace.SpanContext
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		s, ok := rec.Span("process traced")
		if !ok {
			return fmt.Errorf("no process span: %v", rec.SpanNames())
		}
		if s.Parent().SpanID() != pubSpan.SpanContext().SpanID() || !s.SpanContext().Equal(got) {
			return fmt.Errorf("process span %v, parent %v: want the handler's %v, child of the publish %v", s.SpanContext(), s.Parent(), got, pubSpan.SpanContext())
		}
		procSpan = s.SpanContext()
		return nil
	})
	r := logs.find(t, "inside handler")
	if r["trace_id"] != parent.TraceID().String() || r["span_id"] != procSpan.SpanID().String() || r["stream_seq"] != 1.0 || r["delivered"] != 1.0 {
		t.Errorf("handler log record %v: want trace %s, span %s, stream_seq 1, delivered 1", r, parent.TraceID(), procSpan.SpanID())
	}

	wantValue(t, rec, 1, "switchboard_published_messages_total", "service", "pub", "stream", "EVENTS")
	wantValue(t, rec, 1, "switchboard_publish_duration_seconds", "service", "pub", "stream", "EVENTS")
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, m := range []string{"switchboard_consumer_deliveries_total", "switchboard_consumer_acks_total", "switchboard_consumer_handler_duration_seconds"} {
			if v, err := rec.Value(m, "stream", "EVENTS", "consumer", "traced"); err != nil || v != 3 {
				return fmt.Errorf("%s = %v (%v), want 3", m, v, err)
			}
		}
		if v, err := rec.Value("switchboard_consumer_pending_messages", "stream", "EVENTS", "consumer", "traced"); err != nil || v != 0 {
			return fmt.Errorf("pending = %v (%v), want 0", v, err)
		}
		return nil
	})

	// A poison message is dead-lettered and counted by reason.
	if _, err := js.Publish(t.Context(), "events.thing", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		v, err := rec.Value("switchboard_consumer_dead_letters_total", "stream", "EVENTS", "consumer", "traced", "reason", "undecodable")
		if err != nil || v != 1 {
			return fmt.Errorf("dead letters = %v (%v), want 1", v, err)
		}
		return nil
	})

	// A stopped consumer no longer reports its lag; its counters stay.
	if err := traced.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Value("switchboard_consumer_pending_messages", "consumer", "traced"); err == nil {
		t.Error("a stopped consumer still reports its pending messages")
	}
	wantValue(t, rec, 3, "switchboard_consumer_acks_total", "stream", "EVENTS", "consumer", "traced")
}

// TestTelemetryBatches: a batch of ConsumeBatches is a root span linking
// the trace of each of its messages, and its messages are counted.
func TestTelemetryBatches(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js := eventsStream(t, nc)
	rec := telemetrytest.New(t, true)
	pub, err := messaging.NewPublisher(nc, messaging.WithPublishTelemetry(rec.Telemetry))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := remoteParent(t)
	for i := range 3 {
		if _, err := pub.Publish(ctx, messaging.OutEvent{Subject: "events.thing", Type: "thing.made", Data: thing{N: i}}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int, 3)
	c, err := messaging.ConsumeBatches(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "batches", Telemetry: rec.Telemetry},
		func(_ context.Context, ds []*messaging.Delivery) error {
			got <- len(ds)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	n := 0
	for n < 3 {
		select {
		case k := <-got:
			n += k
		case <-time.After(10 * time.Second):
			t.Fatalf("handled %d of 3", n)
		}
	}
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		links := 0
		for _, s := range rec.Spans() {
			if s.Name() != "process batch batches" {
				continue
			}
			if s.Parent().IsValid() {
				return fmt.Errorf("batch span has parent %v, want a root", s.Parent())
			}
			for _, l := range s.Links() {
				if l.SpanContext.TraceID() != parent.TraceID() {
					return fmt.Errorf("link to trace %v, want the publishes' %v", l.SpanContext.TraceID(), parent.TraceID())
				}
				links++
			}
		}
		if links != 3 {
			return fmt.Errorf("%d links from batch spans, want one per message (3); spans %v", links, rec.SpanNames())
		}
		if v, err := rec.Value("switchboard_consumer_deliveries_total", "consumer", "batches"); err != nil || v != 3 {
			return fmt.Errorf("deliveries = %v (%v), want 3", v, err)
		}
		if v, err := rec.Value("switchboard_consumer_acks_total", "consumer", "batches"); err != nil || v != 3 {
			return fmt.Errorf("acks = %v (%v), want 3", v, err)
		}
		return nil
	})
}
