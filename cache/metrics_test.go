package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/telemetry/telemetrytest"
)

// TestMetrics: the shared cache's lookups, errors, breaker and backend
// latency are exported, read when scraped; the local cache's too.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	rec := telemetrytest.New(t, false)
	f := &flaky{Backend: cache.NewMemory(0)}
	a := newAside(t, cache.Observe(f, rec.Telemetry), cache.Options{Budget: 20 * time.Millisecond})
	local, err := cache.NewLocal[user](10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close)
	unregister := cache.RegisterReport(rec.Telemetry, "people", func() cache.Report {
		l, s := local.Stats(), a.Stats()
		return cache.Report{Local: &l, Shared: &s, SharedReadable: true}
	})
	src := &source{u: user{"ada", 1}, found: true}
	for range 2 { // a miss, then a hit
		if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := local.Get(ctx, "u1", func(context.Context) (user, uint64, bool, error) { return src.u, 1, true, nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := func(v float64, name string, labels ...string) {
		t.Helper()
		got, err := rec.Value(name, labels...)
		if err != nil || got != v {
			t.Errorf("%s%v = %v (%v), want %v", name, labels, got, err, v)
		}
	}
	for _, layer := range []string{"local", "shared"} {
		want(1, "switchboard_cache_lookups_total", "cache", "people", "layer", layer, "result", "hit")
		want(1, "switchboard_cache_lookups_total", "cache", "people", "layer", layer, "result", "miss")
	}
	want(0, "switchboard_cache_breaker_open", "cache", "people")
	want(1, "switchboard_cache_shared_readable", "cache", "people")
	want(1, "switchboard_cache_entries", "cache", "people")
	want(2, "switchboard_cache_backend_duration_seconds", "backend", "memory", "op", "get")

	f.down.Store(true)
	for range 5 {
		_, _, _ = a.Get(ctx, "u2", src.load)
	}
	want(1, "switchboard_cache_breaker_open", "cache", "people")
	if v, err := rec.Value("switchboard_cache_errors_total", "cache", "people"); err != nil || v < 3 {
		t.Errorf("errors = %v (%v), want at least the 3 that open the breaker", v, err)
	}
	f.down.Store(false)
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, _, _ = a.Get(ctx, "u3", src.load)
		if v, _ := rec.Value("switchboard_cache_breaker_open", "cache", "people"); v != 0 {
			return fmt.Errorf("breaker open = %v after recovery", v)
		}
		return nil
	})
	unregister()
	if _, err := rec.Value("switchboard_cache_entries", "cache", "people"); err == nil {
		t.Error("an unregistered report is still exported")
	}
}
