package cache_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/internal/testkit"
)

// backends are the implementations every behaviour test runs against.
func backends() map[string]func(t *testing.T) cache.Backend {
	return map[string]func(t *testing.T) cache.Backend{
		"memory": func(t *testing.T) cache.Backend {
			m := cache.NewMemory(0)
			t.Cleanup(func() { m.Close() })
			return m
		},
		"redis": func(t *testing.T) cache.Backend {
			srv := startRedis(t)
			r, err := cache.NewRedis(cache.RedisOptions{URL: srv.URL(), Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
}

// TestBackendBehaviour is the suite both backends pass.
func TestBackendBehaviour(t *testing.T) {
	for name, newBackend := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("get of a missing key is a miss", func(t *testing.T) {
				b := newBackend(t)
				if _, ok, err := b.Get(ctx, "k"); ok || err != nil {
					t.Fatalf("got ok=%v err=%v, want a miss", ok, err)
				}
			})
			t.Run("set if newer", func(t *testing.T) {
				b := newBackend(t)
				steps := []struct {
					name        string
					givenVer    int64
					givenValue  string
					wantStored  bool
					wantVersion int64
					wantValue   string
				}{
					{name: "first", givenVer: 2, givenValue: "two", wantStored: true, wantVersion: 2, wantValue: "two"},
					{name: "older is refused", givenVer: 1, givenValue: "one", wantStored: false, wantVersion: 2, wantValue: "two"},
					{name: "equal is refused", givenVer: 2, givenValue: "other", wantStored: false, wantVersion: 2, wantValue: "two"},
					{name: "newer replaces", givenVer: 3, givenValue: "three", wantStored: true, wantVersion: 3, wantValue: "three"},
					{name: "version 0 is refused after", givenVer: 0, givenValue: "zero", wantStored: false, wantVersion: 3, wantValue: "three"},
				}
				for _, s := range steps {
					stored, err := b.SetIfNewer(ctx, "k", cache.Entry{Version: s.givenVer, Value: []byte(s.givenValue)}, time.Minute)
					if err != nil || stored != s.wantStored {
						t.Fatalf("%s: stored=%v err=%v, want %v", s.name, stored, err, s.wantStored)
					}
					e, ok, err := b.Get(ctx, "k")
					if err != nil || !ok || e.Version != s.wantVersion || string(e.Value) != s.wantValue {
						t.Fatalf("%s: get = %+v %v %v, want v%d %q", s.name, e, ok, err, s.wantVersion, s.wantValue)
					}
				}
			})
			t.Run("values with colons and binary survive", func(t *testing.T) {
				b := newBackend(t)
				val := []byte("a:b:\x00\xff:c")
				if _, err := b.SetIfNewer(ctx, "k", cache.Entry{Version: 7, Value: val}, time.Minute); err != nil {
					t.Fatal(err)
				}
				e, ok, err := b.Get(ctx, "k")
				if err != nil || !ok || string(e.Value) != string(val) || e.Version != 7 {
					t.Fatalf("get = %+v %v %v", e, ok, err)
				}
			})
			t.Run("entries expire", func(t *testing.T) {
				b := newBackend(t)
				if _, err := b.SetIfNewer(ctx, "k", cache.Entry{Version: 1, Value: []byte("x")}, 50*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
					if _, ok, _ := b.Get(ctx, "k"); ok {
						return errors.New("still there")
					}
					return nil
				})
				// An expired entry no longer blocks older versions.
				if stored, err := b.SetIfNewer(ctx, "k", cache.Entry{Version: 0, Value: []byte("y")}, time.Minute); !stored || err != nil {
					t.Fatalf("set after expiry: %v %v", stored, err)
				}
			})
			t.Run("delete", func(t *testing.T) {
				b := newBackend(t)
				if _, err := b.SetIfNewer(ctx, "k", cache.Entry{Version: 5, Value: []byte("x")}, time.Minute); err != nil {
					t.Fatal(err)
				}
				if err := b.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := b.Get(ctx, "k"); ok || err != nil {
					t.Fatalf("after delete: ok=%v err=%v", ok, err)
				}
				if err := b.Delete(ctx, "never"); err != nil {
					t.Fatalf("delete of a missing key: %v", err)
				}
			})
			t.Run("set nx", func(t *testing.T) {
				b := newBackend(t)
				first, err := b.SetNX(ctx, "once", []byte("1"), 50*time.Millisecond)
				if err != nil || !first {
					t.Fatalf("first = %v %v", first, err)
				}
				again, err := b.SetNX(ctx, "once", []byte("1"), time.Minute)
				if err != nil || again {
					t.Fatalf("second = %v %v, want false", again, err)
				}
				testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
					ok, err := b.SetNX(ctx, "once", []byte("1"), time.Minute)
					if err != nil || !ok {
						return fmt.Errorf("not free after its ttl: %v %v", ok, err)
					}
					return nil
				})
			})
			t.Run("ping and close", func(t *testing.T) {
				b := newBackend(t)
				if err := b.Ping(ctx); err != nil {
					t.Fatalf("ping: %v", err)
				}
				b.Close()
				if err := b.Ping(ctx); err == nil {
					t.Fatal("ping after close succeeded")
				}
			})
		})
	}
}

func TestRedisForeignValuesAreMisses(t *testing.T) {
	srv := startRedis(t)
	r, err := cache.NewRedis(cache.RedisOptions{URL: srv.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ctx := context.Background()
	for _, given := range []string{"garbage", "sb0:3:old format", "sb1:notanumber:x", "sb1:-4:x", "sb1:12"} {
		t.Run(given, func(t *testing.T) {
			if err := raw.Set(ctx, "k", given, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if e, ok, err := r.Get(ctx, "k"); ok || err != nil {
				t.Fatalf("get = %+v %v %v, want a miss", e, ok, err)
			}
			// A fill replaces what is not ours.
			if stored, err := r.SetIfNewer(ctx, "k", cache.Entry{Version: 1, Value: []byte("v")}, time.Minute); !stored || err != nil {
				t.Fatalf("fill over %q: %v %v", given, stored, err)
			}
		})
	}
}

func TestNewRedisRejectsBadURL(t *testing.T) {
	if _, err := cache.NewRedis(cache.RedisOptions{URL: "http://x"}); err == nil {
		t.Fatal("want an error for a non-redis URL")
	}
}
