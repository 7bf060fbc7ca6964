package messaging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
)

// discard is a span exporter that drops what it is given: the batch
// processor still does all its work, only the network is left out.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkEchoTelemetry is BenchmarkEcho (in process) with the typed
// service instrumented as switchboard runs it: metrics on (a Prometheus
// registry), and then metrics and tracing (the OpenTelemetry SDK, every
// request sampled, spans batched to an exporter that drops them). The
// baseline is the same raw micro handler, so the ratios against
// BenchmarkEcho's show what metrics and tracing cost. See
// docs/performance.md.
func BenchmarkEchoTelemetry(b *testing.B) {
	payload, err := json.Marshal(benchEcho{Text: benchText})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tracing bool
	}{{name: "metrics"}, {name: "metrics+tracing", tracing: true}} {
		b.Run(tc.name, func(b *testing.B) {
			o := telemetry.Options{Metrics: prometheus.NewRegistry()}
			if tc.tracing {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				o.TracerProvider = tp
			}
			tel := telemetry.New(o)
			srv := startServer(b)
			svc := benchConnect(b, srv, "bench-service", false)
			benchJSONEcho(b, svc, "raw.echo")
			newService(b, svc, messaging.ServiceConfig{Name: "typed", Telemetry: tel.For("typed")},
				messaging.Typed("echo", func(_ context.Context, req benchEcho) (benchEcho, error) {
					return req, nil
				}))
			nc := benchConnect(b, srv, "bench-client", false)
			call := func(subject string) func(context.Context) error {
				return func(ctx context.Context) error {
					reply, err := nc.RequestWithContext(ctx, subject, payload)
					if err != nil {
						return err
					}
					var resp benchEcho
					if err := json.Unmarshal(reply.Data, &resp); err != nil || resp.Text != benchText {
						return fmt.Errorf("echo %s: got %q (%v)", subject, reply.Data, err)
					}
					return nil
				}
			}
			for _, c := range []int{1, 16, 128} {
				b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
					benchload.Compare(b, c, 9000,
						benchload.Side{Name: "raw", Call: call("raw.echo")},
						benchload.Side{Name: "typed", Call: call("typed.echo")},
						benchload.SelfCPU)
				})
			}
		})
	}
}
