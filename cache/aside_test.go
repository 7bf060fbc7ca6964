package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/internal/testkit"
)

type user struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

func newAside(t *testing.T, b cache.Backend, o cache.Options) *cache.Aside[user] {
	t.Helper()
	a, err := cache.NewAside[user](b, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// source is a fake source of truth with a version, counting loads.
type source struct {
	mu    sync.Mutex
	u     user
	found bool
	loads atomic.Int64
}

func (s *source) load(context.Context) (user, int64, bool, error) {
	s.loads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.u, s.u.Version, s.found, nil
}

func (s *source) write(u user) {
	s.mu.Lock()
	s.u, s.found = u, true
	s.mu.Unlock()
}

func TestAsideBehaviour(t *testing.T) {
	for name, newBackend := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("miss loads and fills, then hits", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{Namespace: "users"})
				src := &source{u: user{"ada", 1}, found: true}
				for i := range 3 {
					got, found, err := a.Get(ctx, "u1", src.load)
					if err != nil || !found || got.Name != "ada" {
						t.Fatalf("get %d = %v %v %v", i, got, found, err)
					}
				}
				st := a.Stats()
				if src.loads.Load() != 1 || st.Hits != 2 || st.Misses != 1 {
					t.Fatalf("loads=%d stats=%+v, want 1 load, 2 hits, 1 miss", src.loads.Load(), st)
				}
				if a.Key("u1") != "switchboard:users:u1" {
					t.Fatalf("key = %q", a.Key("u1"))
				}
			})
			t.Run("not found is cached negatively", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{Namespace: "users"})
				src := &source{}
				for range 3 {
					if _, found, err := a.Get(ctx, "nobody", src.load); found || err != nil {
						t.Fatalf("found=%v err=%v", found, err)
					}
				}
				if src.loads.Load() != 1 || a.Stats().NegativeHits != 2 {
					t.Fatalf("loads=%d stats=%+v", src.loads.Load(), a.Stats())
				}
			})
			t.Run("negative entries expire quickly", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{NegativeTTL: 30 * time.Millisecond})
				src := &source{}
				if _, found, _ := a.Get(ctx, "later", src.load); found {
					t.Fatal("found")
				}
				src.write(user{"new", 0}) // a version-0 value, as for an id that appears
				testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
					if _, found, _ := a.Get(ctx, "later", src.load); !found {
						return errors.New("still negative")
					}
					return nil
				})
			})
			t.Run("put and absent after writes", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{})
				src := &source{u: user{"ada", 1}, found: true}
				if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
					t.Fatal(err)
				}
				a.Put(ctx, "u1", 2, user{"ada lovelace", 2})
				got, found, _ := a.Get(ctx, "u1", src.load)
				if !found || got.Version != 2 {
					t.Fatalf("after put: %v %v", got, found)
				}
				a.Put(ctx, "u1", 1, user{"stale", 1}) // an older write never wins
				if got, _, _ := a.Get(ctx, "u1", src.load); got.Version != 2 {
					t.Fatalf("older put replaced newer: %v", got)
				}
				a.Absent(ctx, "u1", 3)
				if _, found, _ := a.Get(ctx, "u1", src.load); found {
					t.Fatal("found after absent")
				}
				if src.loads.Load() != 1 {
					t.Fatalf("loads = %d, want 1 (writes update the cache)", src.loads.Load())
				}
			})
			t.Run("stampede loads once", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{})
				src := &source{u: user{"ada", 1}, found: true}
				gate := make(chan struct{})
				slow := func(ctx context.Context) (user, int64, bool, error) {
					<-gate
					return src.load(ctx)
				}
				const n = 1000
				var wg sync.WaitGroup
				var failures, started atomic.Int64
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						started.Add(1)
						if got, found, err := a.Get(ctx, "cold", slow); err != nil || !found || got.Name != "ada" {
							failures.Add(1)
						}
					}()
				}
				// Let the callers pile up on the cold key, then load. Any
				// that arrive after the load find the filled entry.
				testkit.Eventually(t, 10*time.Second, time.Millisecond, func() error {
					if s := started.Load(); s < n {
						return fmt.Errorf("%d callers started", s)
					}
					return nil
				})
				close(gate)
				wg.Wait()
				if failures.Load() != 0 || src.loads.Load() != 1 {
					t.Fatalf("failures=%d loads=%d, want 0 and 1", failures.Load(), src.loads.Load())
				}
			})
			t.Run("a slow reader never overwrites a newer write", func(t *testing.T) {
				b := newBackend(t)
				src := &source{u: user{"v1", 1}, found: true}
				loaded := make(chan struct{})
				proceed := make(chan struct{})
				var once sync.Once
				slowReader := newAside(t, b, cache.WithBeforeFill(cache.Options{}, func() {
					once.Do(func() {
						close(loaded)
						<-proceed
					})
				}))
				writer := newAside(t, b, cache.Options{})
				readDone := make(chan error, 1)
				go func() {
					_, _, err := slowReader.Get(ctx, "u1", src.load) // loads v1, then stalls
					readDone <- err
				}()
				<-loaded
				// The write lands while the reader holds v1.
				src.write(user{"v2", 2})
				writer.Put(ctx, "u1", 2, user{"v2", 2})
				close(proceed)
				if err := <-readDone; err != nil {
					t.Fatal(err)
				}
				for _, a := range []*cache.Aside[user]{writer, slowReader} {
					got, _, err := a.Get(ctx, "u1", src.load)
					if err != nil || got.Version != 2 {
						t.Fatalf("after the write: %v %v, want v2", got, err)
					}
				}
			})
			t.Run("bad data under our key is a miss", func(t *testing.T) {
				b := newBackend(t)
				a := newAside(t, b, cache.Options{})
				if _, err := b.SetIfNewer(ctx, a.Key("u1"), cache.Entry{Version: 1, Value: []byte("{not json")}, time.Minute); err != nil {
					t.Fatal(err)
				}
				src := &source{u: user{"ada", 2}, found: true}
				got, found, err := a.Get(ctx, "u1", src.load)
				if err != nil || !found || got.Name != "ada" || src.loads.Load() != 1 {
					t.Fatalf("got %v %v %v loads=%d", got, found, err, src.loads.Load())
				}
			})
			t.Run("load errors are returned and not cached", func(t *testing.T) {
				a := newAside(t, newBackend(t), cache.Options{})
				boom := errors.New("stream unavailable")
				calls := 0
				load := func(context.Context) (user, int64, bool, error) {
					calls++
					if calls == 1 {
						return user{}, 0, false, boom
					}
					return user{"ada", 1}, 1, true, nil
				}
				if _, _, err := a.Get(ctx, "u1", load); !errors.Is(err, boom) {
					t.Fatalf("err = %v", err)
				}
				if got, found, err := a.Get(ctx, "u1", load); err != nil || !found || got.Name != "ada" {
					t.Fatalf("retry: %v %v %v", got, found, err)
				}
			})
		})
	}
}

// flaky is a backend that fails (or hangs until ctx ends) while down.
type flaky struct {
	cache.Backend
	down  atomic.Bool
	hang  bool
	calls atomic.Int64
}

func (f *flaky) fail(ctx context.Context) error {
	f.calls.Add(1)
	if !f.down.Load() {
		return nil
	}
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("connection refused")
}

func (f *flaky) Get(ctx context.Context, k string) (cache.Entry, bool, error) {
	if err := f.fail(ctx); err != nil {
		return cache.Entry{}, false, err
	}
	return f.Backend.Get(ctx, k)
}

func (f *flaky) SetIfNewer(ctx context.Context, k string, e cache.Entry, ttl time.Duration) (bool, error) {
	if err := f.fail(ctx); err != nil {
		return false, err
	}
	return f.Backend.SetIfNewer(ctx, k, e, ttl)
}

func (f *flaky) Ping(ctx context.Context) error {
	if err := f.fail(ctx); err != nil {
		return err
	}
	return f.Backend.Ping(ctx)
}

func TestAsideFallsBackAndRecovers(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%v", hang), func(t *testing.T) {
			ctx := context.Background()
			f := &flaky{Backend: cache.NewMemory(0), hang: hang}
			a := newAside(t, f, cache.Options{Budget: 20 * time.Millisecond})
			src := &source{u: user{"ada", 1}, found: true}
			if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
				t.Fatal(err)
			}
			f.down.Store(true)
			for i := range 50 {
				got, found, err := a.Get(ctx, "u1", src.load)
				if err != nil || !found || got.Name != "ada" {
					t.Fatalf("get %d while down: %v %v %v", i, got, found, err)
				}
			}
			if a.Health(ctx) == nil {
				t.Fatal("health is nil while the backend is down")
			}
			// The breaker stops calling a backend that keeps failing.
			if st := a.Stats(); st.Skipped == 0 || f.calls.Load() > 20 {
				t.Fatalf("stats=%+v calls=%d: breaker did not open", st, f.calls.Load())
			}
			f.down.Store(false)
			hitsBefore := a.Stats().Hits
			testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
				if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
					return err
				}
				if a.Stats().Hits <= hitsBefore {
					return errors.New("no hits yet")
				}
				return nil
			})
			if err := a.Health(ctx); err != nil {
				t.Fatalf("health after recovery: %v", err)
			}
		})
	}
}

func TestAsideWithPausedRedis(t *testing.T) {
	srv := startRedis(t)
	r, err := cache.NewRedis(cache.RedisOptions{URL: srv.URL(), Timeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := newAside(t, r, cache.Options{Budget: 30 * time.Millisecond})
	ctx := context.Background()
	src := &source{u: user{"ada", 1}, found: true}
	if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	var slowest time.Duration
	for i := range 30 {
		start := time.Now()
		got, found, err := a.Get(ctx, "u1", src.load)
		if d := time.Since(start); d > slowest {
			slowest = d
		}
		if err != nil || !found || got.Name != "ada" {
			t.Fatalf("get %d with Redis paused: %v %v %v", i, got, found, err)
		}
	}
	t.Logf("slowest get with Redis paused: %s (budget 30ms per call)", slowest)
	srv.Resume(t)
	hits := a.Stats().Hits
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, _, err := a.Get(ctx, "u1", src.load); err != nil {
			return err
		}
		if a.Stats().Hits <= hits {
			return errors.New("no hits yet")
		}
		return nil
	})
}

func TestIdempotency(t *testing.T) {
	for name, newBackend := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			idem := cache.NewIdempotency(newBackend(t), "")
			var wg sync.WaitGroup
			var firsts atomic.Int64
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					first, err := idem.Claim(ctx, "webhook-1:event-9", time.Minute)
					if err != nil {
						t.Error(err)
					}
					if first {
						firsts.Add(1)
					}
				}()
			}
			wg.Wait()
			if firsts.Load() != 1 {
				t.Fatalf("%d first claims, want 1", firsts.Load())
			}
			if err := idem.Release(ctx, "webhook-1:event-9"); err != nil {
				t.Fatal(err)
			}
			if first, err := idem.Claim(ctx, "webhook-1:event-9", time.Minute); !first || err != nil {
				t.Fatalf("claim after release: %v %v", first, err)
			}
		})
	}
}
