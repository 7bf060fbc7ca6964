package users_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// sharedCache reads the counters of a users service's shared cache.
type sharedCache struct{ svc *users.Service }

// waitForFeed waits until the service's change feed has delivered the
// stream up to seq (0: any event). Until then a caller whose session has
// seen seq is answered by the stream leader, not from the caches.
func (c sharedCache) waitForFeed(t *testing.T, seq uint64) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if got := c.svc.CacheStats().FeedSeq; got == 0 || got < seq {
			return fmt.Errorf("the change feed is at %d, want %d", got, seq)
		}
		return nil
	})
}

func (c sharedCache) Stats() cache.Stats {
	if st := c.svc.CacheStats().Shared; st != nil {
		return *st
	}
	return cache.Stats{}
}

// startCachedUsers starts a users service on nc whose reads go through a
// shared cache on b, with no in-process cache in front of it; it returns
// the cache to inspect. The shared cache is read once its invalidator
// caught up with the stream, within a moment of the start.
func startCachedUsers(t *testing.T, nc *nats.Conn, b cache.Backend, budget time.Duration) sharedCache {
	t.Helper()
	svc, err := users.Start(context.Background(), nc, users.Options{Cache: cache.Config{Backend: b, Budget: budget, LocalEntries: -1}})
	if err != nil {
		t.Fatalf("start users: %v", err)
	}
	t.Cleanup(func() { stopUsers(t, svc) })
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !svc.CacheStats().SharedOpen {
			return errors.New("the shared cache is not readable yet")
		}
		return nil
	})
	return sharedCache{svc}
}

func newRedisBackend(t *testing.T, r *cachetest.Redis, timeout time.Duration) cache.Backend {
	t.Helper()
	b, err := cache.NewRedis(cache.RedisOptions{URL: r.URL(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestCachedGet(t *testing.T) {
	backends := map[string]func(t *testing.T) cache.Backend{
		"memory": func(*testing.T) cache.Backend { return cache.NewMemory(0) },
		"redis": func(t *testing.T) cache.Backend {
			return newRedisBackend(t, cachetest.StartRedis(t), 200*time.Millisecond)
		},
	}
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, t.TempDir())
			aside := startCachedUsers(t, connect(t, srv, "users"), newBackend(t), 200*time.Millisecond)
			c := newClient(t, connect(t, srv, "client"))
			ctx := t.Context()

			u := mustCreate(t, c, "Ada Lovelace", "ada@example.com", 36)
			// The client's session asks for its write; this replica serves
			// from its caches once its change feed has delivered it.
			aside.waitForFeed(t, 0)
			for range 5 {
				got, err := get(ctx, c, u.ID)
				if err != nil || got != u {
					t.Fatalf("get = %+v, %v; want %+v", got, err, u)
				}
			}
			// The create filled the cache: every get was a hit.
			if st := aside.Stats(); st.Hits != 5 || st.Loads != 0 {
				t.Fatalf("stats = %+v, want 5 hits and no load", st)
			}
			upd, err := update(ctx, c, contract.UpdateRequest{ID: u.ID, Version: 1, Age: ptr(37)})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := get(ctx, c, u.ID); err != nil || got != upd {
				t.Fatalf("get after update = %+v, %v; want %+v", got, err, upd)
			}
			// The delete, with its reply's position: the gets below
			// carry it, and count in the cache's stats once the feed
			// has delivered it (before, the leader answers them).
			body, err := json.Marshal(contract.DeleteRequest{ID: u.ID, Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			reply, err := c.Call(ctx, contract.SubjectDelete, body)
			if err != nil {
				t.Fatal(err)
			}
			deleted, err := strconv.ParseUint(reply.Header.Get(wire.HeaderSequence), 10, 64)
			if err != nil {
				t.Fatalf("the delete's reply has no sequence: %v", err)
			}
			aside.waitForFeed(t, deleted)
			if _, err := get(ctx, c, u.ID); err == nil {
				t.Fatal("get after delete succeeded")
			}
			// Unknown ids are remembered as absent.
			unknown := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
			for range 3 {
				if _, err := get(ctx, c, unknown); err == nil {
					t.Fatal("unknown id found")
				}
			}
			// The deleted user and the unknown id's repeats are
			// negative hits; only the unknown id's first get loads.
			if st := aside.Stats(); st.Loads != 1 || st.NegativeHits != 3 {
				t.Fatalf("stats = %+v, want one load (the unknown id) and 3 negative hits", st)
			}
		})
	}
}

// Two replicas share one Redis: a write on one is seen by a read on the
// other at once, not after a TTL.
func TestCacheSharedByReplicas(t *testing.T) {
	r := cachetest.StartRedis(t)
	srv := startServer(t, t.TempDir())
	replicaA := connect(t, srv, "a")
	replicaB := connect(t, srv, "b")
	startCachedUsers(t, replicaA, newRedisBackend(t, r, 200*time.Millisecond), 200*time.Millisecond)
	startCachedUsers(t, replicaB, newRedisBackend(t, r, 200*time.Millisecond), 200*time.Millisecond)
	c := newClient(t, connect(t, srv, "client"))
	ctx := t.Context()

	u := mustCreate(t, c, "Ada", "ada@example.com", 36)
	for i := range 20 {
		want, err := update(ctx, c, contract.UpdateRequest{ID: u.ID, Version: int64(i + 1), Age: ptr(i)})
		if err != nil {
			t.Fatal(err)
		}
		// Whichever replica answers, the read sees the write.
		for range 4 {
			got, err := get(ctx, c, u.ID)
			if err != nil || got.Version != want.Version {
				t.Fatalf("after update to v%d: got v%d, %v", want.Version, got.Version, err)
			}
		}
	}
}

func TestCacheGarbageIsAMiss(t *testing.T) {
	r := cachetest.StartRedis(t)
	srv := startServer(t, t.TempDir())
	startCachedUsers(t, connect(t, srv, "users"), newRedisBackend(t, r, 200*time.Millisecond), 200*time.Millisecond)
	c := newClient(t, connect(t, srv, "client"))
	u := mustCreate(t, c, "Ada", "ada@example.com", 36)

	raw := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer raw.Close()
	for _, bad := range []string{"garbage", "sb1:99:{not json", "sb0:1:{\"old\":\"format\"}"} {
		if err := raw.Set(t.Context(), cache.Key("users", u.ID), bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := get(t.Context(), c, u.ID)
		if err != nil || got != u {
			t.Fatalf("with %q in Redis: %+v, %v", bad, got, err)
		}
	}
}

// Redis stopped, or paused (SIGSTOP), mid-run: users.get keeps answering
// with no errors, and once Redis is back the hits return by themselves.
func TestRedisOutages(t *testing.T) {
	const budget = 30 * time.Millisecond
	for _, outage := range []string{"stopped", "paused"} {
		t.Run(outage, func(t *testing.T) {
			r := cachetest.StartRedis(t)
			srv := startServer(t, t.TempDir())
			aside := startCachedUsers(t, connect(t, srv, "users"), newRedisBackend(t, r, budget), budget)
			c := newClient(t, connect(t, srv, "client"))
			ctx := t.Context()
			u := mustCreate(t, c, "Ada", "ada@example.com", 36)

			if outage == "stopped" {
				r.Stop(t)
			} else {
				r.Pause(t)
			}
			slowest := readMany(t, ctx, c, u, 200)
			t.Logf("Redis %s: 200 gets, 0 errors, slowest %s (per-call budget %s)", outage, slowest, budget)
			if aside.Stats().Errors == 0 {
				t.Fatal("the cache counted no failure during the outage")
			}

			if outage == "stopped" {
				r.Restart(t)
			} else {
				r.Resume(t)
			}
			hits := aside.Stats().Hits
			testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
				readMany(t, ctx, c, u, 5)
				if aside.Stats().Hits <= hits {
					return errors.New("no cache hits yet")
				}
				return nil
			})
		})
	}
}

// readMany gets u n times, failing on any error or wrong answer, and
// returns the slowest call.
func readMany(t *testing.T, ctx context.Context, c *messaging.Client, u contract.User, n int) time.Duration {
	t.Helper()
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		got, err := get(ctx, c, u.ID)
		if d := time.Since(start); d > slowest {
			slowest = d
		}
		if err != nil || got.ID != u.ID {
			t.Fatalf("get %d: %+v, %v", i, got, err)
		}
	}
	return slowest
}
