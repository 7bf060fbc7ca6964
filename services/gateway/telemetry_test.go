package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/telemetry/telemetrytest"
)

// TestTracing: with tracing on, an HTTP request that brings a traceparent
// is a server span named after its route, the call to the service is its
// child, and the service's span is the call's child; the call is counted
// with caller "gateway".
func TestTracing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rec := telemetrytest.New(t, true)
	w.service(messaging.ServiceConfig{Name: "things", Version: "1.0.0", Telemetry: rec.For("things")}, thingsEndpoints(nil)...)
	_, hs := w.gateway(gateway.Options{Telemetry: rec.Telemetry})
	var th Thing
	do(t, "POST", hs.URL+"/v1/things", `{"name":"box","count":3}`,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").want200(t, &th)

	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		var httpSpan, call, served trace.SpanContext
		for _, s := range rec.Spans() {
			if s.SpanKind() == trace.SpanKindServer && s.Name() == "POST /v1/things" {
				if s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
					return fmt.Errorf("HTTP span's parent %v, want the traceparent's", s.Parent())
				}
				httpSpan = s.SpanContext()
			}
		}
		for _, s := range rec.Spans() {
			switch {
			case s.SpanKind() == trace.SpanKindClient && s.Name() == "things.create":
				call = s.SpanContext()
				if s.Parent().SpanID() != httpSpan.SpanID() {
					return fmt.Errorf("call span's parent %v, want the HTTP span %v", s.Parent().SpanID(), httpSpan.SpanID())
				}
			case s.SpanKind() == trace.SpanKindServer && s.Name() == "things.create":
				served = s.Parent()
			}
		}
		if !httpSpan.IsValid() || !call.IsValid() || served.SpanID() != call.SpanID() {
			return fmt.Errorf("want HTTP span → call → service span; spans: %v", rec.SpanNames())
		}
		return nil
	})
	if v, err := rec.Value("switchboard_client_requests_total", "caller", "gateway", "subject", "things.create", "code", "200"); err != nil || v != 1 {
		t.Errorf("gateway calls = %v (%v), want 1", v, err)
	}
}
