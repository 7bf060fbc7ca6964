package users_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// On a 3-node cluster with the USERS stream replicated 3 times, a read
// right after an acknowledged write sees it, whichever replica of the
// service answers and whichever node it is connected to: reads ask the
// stream leader, not a follower that may be behind (docs/guarantees.md).
func TestClusterReadsSeeAcknowledgedWrites(t *testing.T) {
	cl := embeddedtest.StartCluster(t, 3)
	r3 := messaging.Replication{Replicas: 3} // every replica on every node, as --stream-replicas 3
	// Two replicas of the service, neither with an in-process cache, so
	// every read goes to the stream.
	for _, name := range []string{"users-a", "users-b"} {
		svc, err := users.Start(context.Background(), cl.Connect(name), users.Options{Replication: r3, Cache: cache.Config{LocalEntries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopUsers(t, svc) })
	}
	c, err := messaging.NewClient(cl.Connect("client"), messaging.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stale, missing := 0, 0
	const n = 200
	for i := range n {
		u := mustCreate(t, c, "Ada", emailN(i), 36)
		if _, err := get(ctx, c, u.ID); err != nil {
			missing++
		}
		upd := mustUpdate(t, c, contract.UpdateRequest{ID: u.ID, Version: 1, Age: ptr(37)})
		if got, err := get(ctx, c, u.ID); err != nil || got.Version != upd.Version {
			stale++
		}
	}
	if missing != 0 || stale != 0 {
		t.Fatalf("of %d acknowledged creates %d were not found by the next get; of %d updates %d read back older", n, missing, n, stale)
	}
}

// The USERS stream's leader is shut down while creates are under way on a
// 3-node cluster; callers retry what failed under the same Idempotency-Key.
// No acknowledged create is lost, none is made twice, every acknowledged
// one is read back by the next read, and writes resume after the election
// (the time to the first acknowledgement after the kill is logged, for
// docs/operations.md).
func TestClusterLeaderKillDuringCreates(t *testing.T) {
	cl := embeddedtest.StartCluster(t, 3)
	r3 := messaging.Replication{Replicas: 3} // every replica on every node, as --stream-replicas 3
	svc, err := users.Start(context.Background(), cl.Connect("users"), users.Options{Replication: r3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopUsers(t, svc) })
	c, err := messaging.NewClient(cl.Connect("client"), messaging.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	const total, workers = 300, 8
	var (
		next     atomic.Int64
		mu       sync.Mutex
		acked    = map[int]contract.User{}
		killedAt atomic.Int64 // unix nanos
		firstAck atomic.Int64
		wg       sync.WaitGroup
		failures atomic.Int64
		killOnce sync.Once
	)
	deadline := time.Now().Add(60 * time.Second)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				key := wire.WithIdempotencyKey(fmt.Sprintf("create-%d", i))
				for {
					u, err := create(context.Background(), c, "User", emailN(i), 30, key)
					if err == nil {
						if k := killedAt.Load(); k != 0 {
							firstAck.CompareAndSwap(0, time.Now().UnixNano())
						}
						mu.Lock()
						acked[i] = u
						n := len(acked)
						mu.Unlock()
						if n == total/3 {
							killOnce.Do(func() {
								leader := cl.StreamLeader(contract.Stream)
								killedAt.Store(time.Now().UnixNano())
								cl.Stop(leader)
							})
						}
						break
					}
					failures.Add(1)
					if time.Now().After(deadline) {
						t.Errorf("create %d still failing: %v", i, err)
						return
					}
					time.Sleep(50 * time.Millisecond) // the caller's retry backoff
				}
			}
		})
	}
	wg.Wait()
	if k := killedAt.Load(); k == 0 || firstAck.Load() == 0 {
		t.Fatal("the leader was not killed, or nothing was acknowledged after")
	}
	t.Logf("first acknowledgement %v after the leader's shutdown; %d failed attempts retried",
		time.Duration(firstAck.Load()-killedAt.Load()), failures.Load())
	// Every acknowledged create reads back, once each.
	ctx := t.Context()
	for i, u := range acked {
		got, err := get(ctx, c, u.ID)
		if err != nil || got.Email != emailN(i) {
			t.Fatalf("acknowledged create %d (%s) reads %+v, %v", i, u.ID, got, err)
		}
	}
	all := listAll(t, c, 100)
	if len(all) != total || len(acked) != total {
		t.Fatalf("%d users stored, %d acknowledged, for %d creates: a retry made a duplicate, or a create was lost", len(all), len(acked), total)
	}
}
