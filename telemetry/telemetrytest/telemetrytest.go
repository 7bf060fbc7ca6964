// Package telemetrytest records what instrumented code measures, for
// tests: a Telemetry on a fresh Prometheus registry and an OpenTelemetry
// SDK provider that keeps every ended span in memory.
package telemetrytest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/devloop/switchboard/telemetry"
)

// Recorder is a Telemetry whose metrics and spans a test can read.
type Recorder struct {
	*telemetry.Telemetry
	Registry *prometheus.Registry
	spans    *tracetest.SpanRecorder
}

// New returns a Recorder with metrics and, when tracing, every span
// sampled and recorded. Its provider is shut down when the test ends.
func New(t testing.TB, tracing bool) *Recorder {
	t.Helper()
	r := &Recorder{Registry: prometheus.NewRegistry(), spans: tracetest.NewSpanRecorder()}
	o := telemetry.Options{Metrics: r.Registry}
	if tracing {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		o.TracerProvider = tp
	}
	r.Telemetry = telemetry.New(o)
	return r
}

// Spans returns the spans ended so far.
func (r *Recorder) Spans() []sdktrace.ReadOnlySpan { return r.spans.Ended() }

// Span returns the first ended span named name.
func (r *Recorder) Span(name string) (sdktrace.ReadOnlySpan, bool) {
	for _, s := range r.spans.Ended() {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// SpanNames lists the names of the spans ended so far, for messages.
func (r *Recorder) SpanNames() []string {
	var names []string
	for _, s := range r.spans.Ended() {
		names = append(names, s.Name())
	}
	return names
}

// Value returns the value of the series of metric name whose labels
// include labels ("k", "v", …): a counter's or gauge's value, a
// histogram's sample count. It is an error when no series matches.
func (r *Recorder) Value(name string, labels ...string) (float64, error) {
	families, err := r.Registry.Gather()
	if err != nil {
		return 0, err
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var seen []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			seen = append(seen, fmt.Sprint(got))
			if matches(got, want) {
				return value(f.GetType(), m), nil
			}
		}
	}
	sort.Strings(seen)
	return 0, fmt.Errorf("no series of %s with %v; series: %s", name, want, strings.Join(seen, " "))
}

func matches(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}
