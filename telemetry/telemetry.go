package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// LatencyBuckets are the upper bounds, in seconds, of Switchboard's
// latency histograms: from half a millisecond (a request answered from
// memory over NATS) to ten seconds (a slow webhook).
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Options are what a Telemetry is made of. Both are optional.
type Options struct {
	// Metrics registers the metrics; nil means no metrics.
	Metrics prometheus.Registerer
	// TracerProvider makes the tracers; nil means no tracing: no spans,
	// and no trace context read from or written to messages.
	TracerProvider trace.TracerProvider
	// Propagator reads and writes trace context in message and HTTP
	// headers (default: W3C traceparent/tracestate and baggage).
	Propagator propagation.TextMapPropagator
}

// Telemetry is the metrics registry and the tracer provider a part is
// given. It is safe for concurrent use; nil is valid and means off.
type Telemetry struct {
	reg     prometheus.Registerer
	tp      trace.TracerProvider
	prop    propagation.TextMapPropagator
	service string
	m       *families // shared by the copies For makes
}

// families memoizes the metric families made through a Telemetry and its
// copies, so that each is registered once.
type families struct {
	mu      sync.Mutex
	byName  map[string]family
	dynamic *dynamic // the collectors Register added; nil until the first
	errs    []error
}

type family struct {
	kind   string
	labels []string
	c      prometheus.Collector
}

// New returns a Telemetry made of o.
func New(o Options) *Telemetry {
	if o.Propagator == nil {
		o.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &Telemetry{reg: o.Metrics, tp: o.TracerProvider, prop: o.Propagator, m: &families{byName: map[string]family{}}}
}

// For returns a copy of t that names service as the owner of what it
// measures (the service label of service metrics, the caller of client
// calls). A nil t gives nil.
func (t *Telemetry) For(service string) *Telemetry {
	if t == nil {
		return nil
	}
	c := *t
	c.service = service
	return &c
}

// Service is the name For gave, or "".
func (t *Telemetry) Service() string {
	if t == nil {
		return ""
	}
	return t.service
}

// Metrics reports whether metrics are on.
func (t *Telemetry) Metrics() bool { return t != nil && t.reg != nil }

// Tracing reports whether tracing is on.
func (t *Telemetry) Tracing() bool { return t != nil && t.tp != nil }

// Tracer returns the tracer of the instrumentation scope name (a package
// path), or a no-op tracer when tracing is off.
func (t *Telemetry) Tracer(name string) trace.Tracer {
	if !t.Tracing() {
		return noop.NewTracerProvider().Tracer(name)
	}
	return t.tp.Tracer(name)
}

// TracerProvider returns the tracer provider, nil when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if !t.Tracing() {
		return nil
	}
	return t.tp
}

// Propagator returns the propagator of trace context.
func (t *Telemetry) Propagator() propagation.TextMapPropagator {
	if t == nil || t.prop == nil {
		return propagation.NewCompositeTextMapPropagator()
	}
	return t.prop
}

// Inject writes ctx's trace context into carrier when tracing is on.
func (t *Telemetry) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	if t.Tracing() {
		t.prop.Inject(ctx, carrier)
	}
}

// Extract returns ctx with the trace context carrier holds when tracing
// is on; else ctx.
func (t *Telemetry) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	if !t.Tracing() {
		return ctx
	}
	return t.prop.Extract(ctx, carrier)
}

// CounterVec returns the counter family name with labels, registering it
// the first time. It returns nil when metrics are off.
func (t *Telemetry) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c, _ := t.family("counter", name, labels, func() prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}).(*prometheus.CounterVec)
	return c
}

// GaugeVec is CounterVec for a gauge family.
func (t *Telemetry) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g, _ := t.family("gauge", name, labels, func() prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}).(*prometheus.GaugeVec)
	return g
}

// HistogramVec is CounterVec for a histogram family with buckets
// (LatencyBuckets when nil).
func (t *Telemetry) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	if buckets == nil {
		buckets = LatencyBuckets
	}
	h, _ := t.family("histogram", name, labels, func() prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}).(*prometheus.HistogramVec)
	return h
}

// family returns the family name, making and registering it with mk the
// first time. A family asked for again with another kind or other labels
// is a programming error: it is recorded (see Err) and nil returned.
func (t *Telemetry) family(kind, name string, labels []string, mk func() prometheus.Collector) prometheus.Collector {
	if !t.Metrics() {
		return nil
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if f, ok := t.m.byName[name]; ok {
		if f.kind != kind || !slices.Equal(f.labels, labels) {
			t.m.errs = append(t.m.errs, fmt.Errorf("telemetry: metric %s asked for as a %s with labels %v, made as a %s with labels %v", name, kind, labels, f.kind, f.labels))
			return nil
		}
		return f.c
	}
	c := mk()
	if err := t.reg.Register(c); err != nil {
		t.m.errs = append(t.m.errs, fmt.Errorf("telemetry: register %s: %w", name, err))
		return nil
	}
	t.m.byName[name] = family{kind: kind, labels: labels, c: c}
	return c
}

// Register adds c, a collector that reads its values when scraped (a
// consumer's pending messages, a cache's counters), to what the registry
// collects, and returns what removes it; with metrics off it does
// nothing. Many such collectors, one per part, may add series to the same
// families, as long as no two send the same series: their Describe is not
// consulted, and they can come and go (a consumer that stops removes its
// own).
func (t *Telemetry) Register(c prometheus.Collector) (unregister func()) {
	if !t.Metrics() {
		return func() {}
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if t.m.dynamic == nil {
		d := &dynamic{members: map[*member]struct{}{}}
		if err := t.reg.Register(d); err != nil {
			t.m.errs = append(t.m.errs, fmt.Errorf("telemetry: register collectors: %w", err))
			return func() {}
		}
		t.m.dynamic = d
	}
	return t.m.dynamic.add(c)
}

// dynamic is one unchecked collector, registered once, over collectors
// that come and go: an unchecked collector cannot be unregistered from a
// prometheus.Registry, so the set is what changes.
type dynamic struct {
	mu      sync.Mutex
	members map[*member]struct{}
}

type member struct{ c prometheus.Collector }

func (d *dynamic) add(c prometheus.Collector) func() {
	m := &member{c: c}
	d.mu.Lock()
	d.members[m] = struct{}{}
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		delete(d.members, m)
		d.mu.Unlock()
	}
}

// Describe sends nothing: the collector is unchecked.
func (d *dynamic) Describe(chan<- *prometheus.Desc) {}

// Collect collects every member side by side: some ask a server (a
// consumer's info), and one slow answer should not add up with the others.
func (d *dynamic) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	members := make([]prometheus.Collector, 0, len(d.members))
	for m := range d.members {
		members = append(members, m.c)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range members {
		wg.Go(func() { c.Collect(ch) })
	}
	wg.Wait()
}

// Err returns what went wrong registering metrics, if anything: a family
// asked for twice in different shapes, or a name another collector of
// the registry holds.
func (t *Telemetry) Err() error {
	if t == nil || t.m == nil {
		return nil
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return errors.Join(t.m.errs...)
}

// LogAttrs returns the trace_id and span_id of the span in ctx, for log
// records, or nothing when ctx carries no valid span context.
func LogAttrs(ctx context.Context) []slog.Attr {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []slog.Attr{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
}
