package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/devloop/switchboard/cache"
)

func newLocal(t *testing.T) *cache.Local[string] {
	t.Helper()
	l, err := cache.NewLocal[string](100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func loader(v string, seq uint64, calls *atomic.Int64) cache.LocalLoader[string] {
	return func(context.Context) (string, uint64, bool, error) {
		calls.Add(1)
		return v, seq, true, nil
	}
}

func TestLocalFillsAndHits(t *testing.T) {
	l := newLocal(t)
	var calls atomic.Int64
	for range 3 {
		v, seq, ok, err := l.Get(t.Context(), "k", loader("v1", 7, &calls))
		if err != nil || v != "v1" || seq != 7 || !ok {
			t.Fatalf("get = %q %d %v %v", v, seq, ok, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d loads, want 1", calls.Load())
	}
	if st := l.Stats(); st.Hits != 2 || st.Misses != 1 || st.Fills != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, _, _, err := l.Get(t.Context(), "bad", func(context.Context) (string, uint64, bool, error) {
		return "", 0, false, errors.New("down")
	}); err == nil {
		t.Fatal("a failed load is not an error")
	}
}

// A write that lands while a load is in flight wins: the load's (older)
// answer is returned to its callers but not kept.
func TestLocalLoadOvertakenByAWriteDoesNotFill(t *testing.T) {
	for _, write := range []string{"invalidate", "put"} {
		t.Run(write, func(t *testing.T) {
			l := newLocal(t)
			var calls atomic.Int64
			_, _, _, err := l.Get(t.Context(), "k", func(context.Context) (string, uint64, bool, error) {
				calls.Add(1)
				// The write happens while the old state is being read.
				if write == "invalidate" {
					l.Invalidate("k", 8)
				} else {
					l.Put("k", 8, "v2", true)
				}
				return "v1", 7, true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			v, seq, _, _ := l.Get(t.Context(), "k", loader("v2", 8, &calls))
			if v != "v2" || seq != 8 {
				t.Fatalf("after the overtaken load: %q at %d, want v2 at 8", v, seq)
			}
		})
	}
}

func TestLocalNeverGoesBack(t *testing.T) {
	l := newLocal(t)
	var calls atomic.Int64
	l.Put("k", 9, "v9", true)
	l.Put("k", 8, "v8", true) // a late, older write
	l.Invalidate("k", 5)      // an old event from the feed
	v, seq, _, _ := l.Get(t.Context(), "k", loader("never", 1, &calls))
	if v != "v9" || seq != 9 || calls.Load() != 0 {
		t.Fatalf("got %q at %d (%d loads), want v9 at 9 from the cache", v, seq, calls.Load())
	}
	l.Invalidate("k", 10)
	if v, _, _, _ := l.Get(t.Context(), "k", loader("v10", 10, &calls)); v != "v10" || calls.Load() != 1 {
		t.Fatalf("after an invalidation: %q, %d loads", v, calls.Load())
	}
	// Absent entries are cached too, at their sequence.
	l.Put("gone", 4, "", false)
	if _, _, ok, _ := l.Get(t.Context(), "gone", loader("x", 1, &calls)); ok || calls.Load() != 1 {
		t.Fatal("an absent entry was not served from the cache")
	}
}

func TestLocalDisabledGoesToTheSource(t *testing.T) {
	l := newLocal(t)
	var calls atomic.Int64
	l.Put("k", 1, "v1", true)
	l.Disable()
	for range 3 {
		if v, _, _, _ := l.Get(t.Context(), "k", loader("src", 2, &calls)); v != "src" {
			t.Fatalf("disabled cache served %q", v)
		}
		l.Put("k", 3, "v3", true) // writes do not fill it either
	}
	if calls.Load() != 3 || l.Stats().Entries != 0 {
		t.Fatalf("%d loads, %d entries; want 3 loads, no entry", calls.Load(), l.Stats().Entries)
	}
	l.Enable()
	l.Get(t.Context(), "k", loader("src", 2, &calls))
	if _, _, _, _ = l.Get(t.Context(), "k", loader("src", 2, &calls)); calls.Load() != 4 {
		t.Fatalf("enabled again, the cache does not fill: %d loads", calls.Load())
	}
	if _, err := cache.NewLocal[string](-1); !errors.Is(err, cache.ErrInvalidOption) {
		t.Fatalf("negative size: %v", err)
	}
}

// A caller that joins a load another caller started, and sees it fail
// while its own context still has time, loads once more itself instead of
// returning the other's failure (in a cluster: a read stuck on a request
// lost in a reconnect until its timeout). The one that started it gets
// its error.
func TestLocalJoinerRetriesAFailedSharedLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t)
		release := make(chan struct{})
		errLost := errors.New("request lost in a reconnect")
		first := make(chan error, 1)
		go func() {
			_, _, _, err := l.Get(t.Context(), "k", func(context.Context) (string, uint64, bool, error) {
				<-release
				return "", 0, false, errLost
			})
			first <- err
		}()
		synctest.Wait() // the first load is running
		var ownLoads atomic.Int32
		second := make(chan string, 1)
		go func() {
			v, _, _, err := l.Get(t.Context(), "k", func(context.Context) (string, uint64, bool, error) {
				ownLoads.Add(1)
				return "v", 1, true, nil
			})
			if err != nil {
				v = "error: " + err.Error()
			}
			second <- v
		}()
		synctest.Wait() // the second has joined the first's load
		if n := ownLoads.Load(); n != 0 {
			t.Fatalf("the second caller loaded %d times while a load was in flight, want it to join", n)
		}
		close(release)
		if err := <-first; !errors.Is(err, errLost) {
			t.Errorf("the first caller got %v, want its load's error", err)
		}
		if v := <-second; v != "v" {
			t.Errorf("the joiner got %q, want the value of its own load after the shared one failed", v)
		}
		if n := ownLoads.Load(); n != 1 {
			t.Errorf("the joiner loaded %d times, want 1", n)
		}
	})
}
