package users_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// On a 3-node cluster with the USERS stream replicated 3 times, a read
// right after an acknowledged write sees it, whichever replica of the
// service answers and whichever node it is connected to: reads ask the
// stream leader, not a follower that may be behind (docs/guarantees.md).
func TestClusterReadsSeeAcknowledgedWrites(t *testing.T) {
	cl := embeddedtest.StartCluster(t, 3)
	js, err := jetstream.New(cl.Connect("setup"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := users.StreamConfig()
	cfg.Replicas = 3
	if _, err := messaging.EnsureStream(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	// Two replicas of the service, neither with an in-process cache, so
	// every read goes to the stream.
	for _, name := range []string{"users-a", "users-b"} {
		svc, err := users.Start(context.Background(), cl.Connect(name), users.Options{Cache: cache.Config{LocalEntries: -1}})
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
