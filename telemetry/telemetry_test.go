package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/telemetry/telemetrytest"
)

// TestNewTracerProvider exports a span with each OTLP protocol to a
// receiver that decodes the OTLP protobuf messages, as configured by the
// standard variables; OTEL_SERVICE_NAME overrides the default name.
func TestNewTracerProvider(t *testing.T) {
	otlp := telemetrytest.StartOTLP(t)
	for _, tc := range []struct {
		protocol, endpoint, env, wantService string
	}{
		{protocol: "", endpoint: otlp.HTTPEndpoint, wantService: "switchboard"},
		{protocol: telemetry.ProtocolHTTP, endpoint: otlp.HTTPEndpoint, env: "from-env", wantService: "from-env"},
		{protocol: telemetry.ProtocolGRPC, endpoint: otlp.GRPCEndpoint, wantService: "switchboard"},
	} {
		t.Run("protocol="+tc.protocol, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
			t.Setenv("OTEL_SERVICE_NAME", tc.env)
			env := map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": tc.protocol}
			tp, err := telemetry.NewTracerProvider(t.Context(), telemetry.TracingOptions{ServiceName: "switchboard", ServiceVersion: "test", Getenv: func(k string) string { return env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			name := "span over " + tc.protocol
			_, span := tp.Tracer("test").Start(context.Background(), name)
			id := span.SpanContext().TraceID().String()
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown (flush): %v", err)
			}
			got := otlp.Trace(id)
			if len(got) != 1 || got[0].GetName() != name || got[0].Service != tc.wantService {
				t.Fatalf("received %v, want one span %q of service %q", got, name, tc.wantService)
			}
		})
	}
	_, err := telemetry.NewTracerProvider(t.Context(), telemetry.TracingOptions{Getenv: func(string) string { return "http/json" }})
	if err == nil || !strings.Contains(err.Error(), `"http/json"`) {
		t.Errorf("protocol http/json: %v, want an error naming it", err)
	}
}

// TestOff: a nil Telemetry, and one without a registry or a provider,
// make nothing and register nothing.
func TestOff(t *testing.T) {
	var nilT *telemetry.Telemetry
	for name, tel := range map[string]*telemetry.Telemetry{"nil": nilT, "empty": telemetry.New(telemetry.Options{}), "nil.For": nilT.For("x")} {
		if tel.Metrics() || tel.Tracing() {
			t.Errorf("%s: metrics %v, tracing %v; want both off", name, tel.Metrics(), tel.Tracing())
		}
		if tel.CounterVec("switchboard_x_total", "x", "a") != nil || tel.TracerProvider() != nil {
			t.Errorf("%s: made a family or a provider", name)
		}
		if tel.Transport(http.DefaultTransport) != http.DefaultTransport {
			t.Errorf("%s: wrapped the transport", name)
		}
		tel.Register(prometheus.NewGoCollector())()
		if tel.Err() != nil {
			t.Errorf("%s: %v", name, tel.Err())
		}
	}
}

// TestFamilies: a family is made once per Telemetry and its copies; asked
// for again in another shape, it is an error Err reports.
func TestFamilies(t *testing.T) {
	rec := telemetrytest.New(t, false)
	a := rec.For("a").CounterVec("switchboard_things_total", "Things.", "service")
	b := rec.For("b").CounterVec("switchboard_things_total", "Things.", "service")
	if a == nil || a != b {
		t.Fatalf("two copies got %p and %p, want one family", a, b)
	}
	a.WithLabelValues("a").Inc()
	b.WithLabelValues("b").Add(2)
	if v, err := rec.Value("switchboard_things_total", "service", "b"); err != nil || v != 2 {
		t.Errorf("service b = %v (%v), want 2", v, err)
	}
	if rec.GaugeVec("switchboard_things_total", "Things.", "service") != nil || rec.CounterVec("switchboard_things_total", "Things.", "other") != nil {
		t.Error("a family asked for in another shape was made")
	}
	if err := rec.Err(); err == nil || !strings.Contains(err.Error(), "switchboard_things_total") {
		t.Errorf("Err = %v, want the clash named", err)
	}
}

// TestHTTP: a traced client request carries its span's traceparent to a
// traced server, whose span is its child and which sees the status code.
func TestHTTP(t *testing.T) {
	rec := telemetrytest.New(t, true)
	var gotParent string
	srv := httptest.NewServer(rec.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusServiceUnavailable)
	})))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: rec.Transport(nil)}
	ctx, parent := rec.Tracer("test").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/hook?token=secret", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if req.Header.Get("traceparent") != "" {
		t.Error("the transport changed the caller's request")
	}
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		var post, server trace.SpanContext
		for _, s := range rec.Spans() {
			switch {
			case s.Name() == "POST" && s.SpanKind() == trace.SpanKindClient:
				post = s.SpanContext()
				if s.Parent().SpanID() != parent.SpanContext().SpanID() {
					return errors.New("the client span is not the caller's child")
				}
				for _, kv := range s.Attributes() {
					if strings.Contains(kv.Value.Emit(), "secret") {
						return errors.New("the client span holds the URL's query")
					}
				}
			case s.Name() == "POST" && s.SpanKind() == trace.SpanKindServer:
				server = s.Parent()
				if s.Status().Code.String() != "Error" {
					return errors.New("a 503 is not an error on the server span")
				}
			}
		}
		if !post.IsValid() || server.SpanID() != post.SpanID() {
			return errors.New("want a client span POST and a server span, its child")
		}
		if want := "00-" + post.TraceID().String() + "-" + post.SpanID().String() + "-01"; gotParent != want {
			return errors.New("traceparent " + gotParent + ", want " + want)
		}
		return nil
	})
}
