package cache

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/telemetry"
)

// Metric names of the caches. docs/observability.md lists them all.
const (
	metricLookups         = "switchboard_cache_lookups_total"
	metricErrors          = "switchboard_cache_errors_total"
	metricSkipped         = "switchboard_cache_skipped_total"
	metricBreakerOpen     = "switchboard_cache_breaker_open"
	metricReadable        = "switchboard_cache_shared_readable"
	metricEntries         = "switchboard_cache_entries"
	metricInvalidations   = "switchboard_cache_invalidations_total"
	metricBackendDuration = "switchboard_cache_backend_duration_seconds"
)

// Report is what the owner of a cache in process and one in a shared
// backend says of them when scraped; either may be nil.
type Report struct {
	Local  *LocalStats
	Shared *Stats
	// SharedReadable is false while the owner keeps reads off the shared
	// cache (its gate is closed).
	SharedReadable bool
}

// RegisterReport exports the counters report returns, read when scraped,
// under the label cache=name (a stream's name in lower case, say). It
// returns what unregisters them; with metrics off it does nothing.
func RegisterReport(t *telemetry.Telemetry, name string, report func() Report) (unregister func()) {
	if !t.Metrics() {
		return func() {}
	}
	d := func(metric, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metric, help, append([]string{"cache"}, labels...), nil)
	}
	return t.Register(&reportCollector{
		name:          name,
		report:        report,
		lookups:       d(metricLookups, "Cache lookups, by cache, layer (local: in process, shared: Redis) and result (hit, negative_hit: cached absence, miss).", "layer", "result"),
		errors:        d(metricErrors, "Calls to the shared cache's backend that failed (the read then goes to the stream), by cache."),
		skipped:       d(metricSkipped, "Shared cache reads not made because its breaker was open or its gate closed, by cache."),
		breakerOpen:   d(metricBreakerOpen, "1 while the shared cache's breaker keeps calls off a failing backend, by cache."),
		readable:      d(metricReadable, "1 while the shared cache may be read (0: its invalidations are catching up after a failure), by cache."),
		entries:       d(metricEntries, "Entries in the in-process cache, by cache."),
		invalidations: d(metricInvalidations, "In-process cache entries dropped because their entity changed, by cache."),
	})
}

type reportCollector struct {
	name   string
	report func() Report

	lookups, errors, skipped, breakerOpen, readable, entries, invalidations *prometheus.Desc
}

// Describe sends nothing: every cache of a process adds its own series to
// the same families (see telemetry.Telemetry.Register).
func (c *reportCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the report.
func (c *reportCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.report()
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, t, v, append([]string{c.name}, labels...)...); err == nil {
			ch <- m
		}
	}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	if l := r.Local; l != nil {
		send(c.lookups, prometheus.CounterValue, float64(l.Hits), "local", "hit")
		send(c.lookups, prometheus.CounterValue, float64(l.Misses), "local", "miss")
		send(c.entries, prometheus.GaugeValue, float64(l.Entries))
		send(c.invalidations, prometheus.CounterValue, float64(l.Invalidations))
	}
	if s := r.Shared; s != nil {
		send(c.lookups, prometheus.CounterValue, float64(s.Hits), "shared", "hit")
		send(c.lookups, prometheus.CounterValue, float64(s.NegativeHits), "shared", "negative_hit")
		send(c.lookups, prometheus.CounterValue, float64(s.Misses), "shared", "miss")
		send(c.errors, prometheus.CounterValue, float64(s.Errors))
		send(c.skipped, prometheus.CounterValue, float64(s.Skipped))
		send(c.breakerOpen, prometheus.GaugeValue, bit(s.BreakerOpen))
		send(c.readable, prometheus.GaugeValue, bit(r.SharedReadable))
	}
}

// Observe returns b timing each of its calls in the histogram
// switchboard_cache_backend_duration_seconds, by backend and operation.
// With metrics off it returns b.
func Observe(b Backend, t *telemetry.Telemetry) Backend {
	h := t.HistogramVec(metricBackendDuration, "Time a call to the cache backend took, failures included, by backend (redis, memory) and operation (get, set, delete, setnx, ping).", nil, "backend", "op")
	if h == nil || b == nil {
		return b
	}
	name := b.Name()
	return &observed{Backend: b,
		get: h.WithLabelValues(name, "get"), set: h.WithLabelValues(name, "set"), del: h.WithLabelValues(name, "delete"),
		setNX: h.WithLabelValues(name, "setnx"), ping: h.WithLabelValues(name, "ping"),
	}
}

// observed is a Backend whose calls are timed.
type observed struct {
	Backend
	get, set, del, setNX, ping prometheus.Observer
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (o *observed) Get(ctx context.Context, key string) (Entry, bool, error) {
	defer since(o.get, time.Now())
	return o.Backend.Get(ctx, key)
}

func (o *observed) SetIfNewer(ctx context.Context, key string, e Entry, ttl time.Duration) (bool, error) {
	defer since(o.set, time.Now())
	return o.Backend.SetIfNewer(ctx, key, e, ttl)
}

func (o *observed) Delete(ctx context.Context, key string) error {
	defer since(o.del, time.Now())
	return o.Backend.Delete(ctx, key)
}

func (o *observed) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	defer since(o.setNX, time.Now())
	return o.Backend.SetNX(ctx, key, value, ttl)
}

func (o *observed) Ping(ctx context.Context) error {
	defer since(o.ping, time.Now())
	return o.Backend.Ping(ctx)
}
