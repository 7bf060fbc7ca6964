package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/testkit"
	notifcontract "github.com/devloop/switchboard/services/notifications/contract"
	orders "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/telemetry/telemetrytest"
)

// TestE2ETracing follows one request as docs/observability.md does: a nats
// req with a traceparent deletes a user, whose event cancels their order
// through orders' consumer, whose event notifications fans out to a
// webhook. An OTLP receiver in the test decodes what switchboard exports:
// one trace, each span the child of the one before, the webhook POST
// carrying the trace context, and the log records of the flow joined to
// it by trace_id and span_id.
func TestE2ETracing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary")
	}
	requireTool(t, "nats", natsInstallHint)
	otlp := telemetrytest.StartOTLP(t)
	type received struct {
		header http.Header
		body   string
	}
	got := make(chan received, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), string(body)}
	}))
	t.Cleanup(recv.Close)

	sb := startProcessEnv(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.HTTPEndpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=switchboard-e2e",
	}, "dev", "--data-dir", t.TempDir(), "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--gateway-listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug", "--tracing", "otlp")
	url := sb.natsURL

	natsReq[map[string]any](t, url, "notifications.webhooks.put", fmt.Sprintf(`{"id":"traced","url":%q,"secret":"whsec_ZTJlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm","subjects":["orders.events.>"]}`, recv.URL))
	user, _ := natsReq[contract.User](t, url, "users.create", `{"name":"Traced User","email":"traced@example.com","age":40}`)
	order, _ := natsReq[orders.Order](t, url, "orders.create", fmt.Sprintf(`{"user_id":%q,"items":[{"sku":"book-1","quantity":1,"unit_price_cents":100}],"currency":"EUR"}`, user.ID))
	if user.ID == "" || order.ID == "" {
		t.Fatalf("users.create %+v, orders.create %+v", user, order)
	}

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	natsCLI(t, url, "req", "-H", "traceparent: 00-"+traceID+"-"+callerSpan+"-01", "users.delete", fmt.Sprintf(`{"id":%q}`, user.ID))

	var hook received
	deadline := time.After(30 * time.Second)
	for hook.header == nil {
		select {
		case r := <-got:
			if r.header.Get(notifcontract.HeaderEventType) == orders.EventCancelled && strings.Contains(r.body, order.ID) {
				hook = r
			}
		case <-deadline:
			t.Fatal("the webhook got no order.cancelled for the order")
		}
	}

	// The chain, each span the child of the one before it.
	chain := []struct {
		name, destination string // destination: a prefix of the span's subject, "" for any
	}{
		{"users.delete", ""},
		{"publish user.deleted", "users.events."},
		{"process orders-on-user-events", ""},
		{"publish order.cancelled", "orders.events."},
		{"process notifications-orders", ""},
		{"publish order.cancelled", "notifications.deliveries."},
		{"process " + notifcontract.Consumer("traced"), ""},
		{"POST", ""},
	}
	var spans []telemetrytest.Span
	testkit.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		trace := otlp.Trace(traceID)
		spans = spans[:0]
		parent := callerSpan
		for _, want := range chain {
			var found *telemetrytest.Span
			for _, s := range trace {
				if s.GetName() == want.name && s.ParentID() == parent && strings.HasPrefix(s.Attr("messaging.destination.name"), want.destination) {
					found = &s
					break
				}
			}
			if found == nil {
				var names []string
				for _, s := range trace {
					names = append(names, fmt.Sprintf("%s(%s<-%s)", s.GetName(), s.SpanID(), s.ParentID()))
				}
				return fmt.Errorf("no span %q (%s…) with parent %s in trace %s: %v", want.name, want.destination, parent, traceID, names)
			}
			if found.Service != "switchboard-e2e" {
				return fmt.Errorf("span %s of service %q, want OTEL_SERVICE_NAME's switchboard-e2e", found.GetName(), found.Service)
			}
			spans = append(spans, *found)
			parent = found.SpanID()
		}
		return nil
	})
	post := spans[len(spans)-1]
	if want := "00-" + traceID + "-" + post.SpanID() + "-01"; hook.header.Get("traceparent") != want {
		t.Errorf("webhook request traceparent %q, want %q (the POST span's)", hook.header.Get("traceparent"), want)
	}

	// The log records of the flow carry the trace and their span.
	sb.stop(t, os.Interrupt)
	recs := jsonRecords(t, sb.stderr.String())
	for _, want := range []struct {
		match map[string]any
		span  telemetrytest.Span
	}{
		{map[string]any{"msg": "request", "service": "users", "endpoint": "delete"}, spans[0]},
		{map[string]any{"msg": "user deleted: open orders cancelled", "user_id": user.ID}, spans[2]},
		{map[string]any{"msg": "webhook delivered", "webhook_id": "traced", "trace_id": traceID}, spans[6]},
	} {
		rec, ok := findRecord(recs, want.match)
		if !ok {
			t.Errorf("no log record with %v", want.match)
			continue
		}
		if rec["trace_id"] != traceID || rec["span_id"] != want.span.SpanID() {
			t.Errorf("log record %v: trace_id %v span_id %v, want %s %s (%s)", want.match, rec["trace_id"], rec["span_id"], traceID, want.span.SpanID(), want.span.GetName())
		}
	}
	if _, ok := findRecord(recs, map[string]any{"msg": "tracing: exporting spans with OTLP", "service_name": "switchboard-e2e"}); !ok {
		t.Error(errors.New("no start-up record saying tracing is on"))
	}
}
