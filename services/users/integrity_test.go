package users_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// One message on a user's subject that is not one of the service's events
// (`nats pub users.events.<id> 'not json'`) does not make the user
// unreadable or unwritable, nor its email unusable after a delete.
func TestBadMessageDoesNotBrickAUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	// Only the users identity may publish there (docs/security.md): a
	// bug in a replica, or an operator's mistake.
	js, err := jetstream.New(connect(t, e.srv, "users-raw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), contract.EventSubjectPrefix+ada.ID, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	// Another client, so that no session sends it past its own caches.
	c := newBareClient(t, e)
	if got, err := get(t.Context(), c, ada.ID); err != nil || got != ada {
		t.Fatalf("get after a bad message = %+v, %v; want %+v", got, err, ada)
	}
	upd := mustUpdate(t, e.client, contract.UpdateRequest{ID: ada.ID, Version: 1, Age: ptr(37)})
	mustDelete(t, e.client, ada.ID, upd.Version)
	if _, err := create(t.Context(), e.client, "Ada again", "ada@example.com", 36); err != nil {
		t.Fatalf("the deleted user's email is not free: %v", err)
	}
}

// A Redis paused (SIGSTOP) while users change: no read ever returns a
// state older than the last acknowledged write, during the pause or after
// it. Writes that could not reach Redis are made good by the invalidator,
// and Redis is not read again until they are (docs/cache.md).
func TestRedisPauseServesNoStaleReads(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("in-process cache %v", local), func(t *testing.T) {
			const budget = 30 * time.Millisecond
			r := cachetest.StartRedis(t)
			srv := startServer(t, t.TempDir())
			entries := -1
			if local {
				entries = 0
			}
			svc, err := users.Start(t.Context(), connect(t, srv, "users"), users.Options{Cache: cache.Config{
				Backend: newRedisBackend(t, r, budget), Budget: budget, LocalEntries: entries}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stopUsers(t, svc) })
			writer := newClient(t, connect(t, srv, "client-writer"))
			reader, err := messaging.NewClient(connect(t, srv, "client-reader"), messaging.WithoutSession(), messaging.WithTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			const n = 30
			want := make([]contract.User, n)
			for i := range n {
				want[i] = mustCreate(t, writer, "User", emailN(i), 30)
			}
			readAll := func(phase string) {
				t.Helper()
				for i, u := range want {
					got, err := get(t.Context(), reader, u.ID)
					deleted := i%3 == 0 && u.Version == 2
					switch {
					case deleted && !errors.Is(err, wire.ErrNotFound):
						t.Fatalf("%s: user %d deleted, read %+v, %v", phase, i, got, err)
					case !deleted && (err != nil || got.Version != u.Version):
						t.Fatalf("%s: user %d read at version %d (%v), last write is version %d", phase, i, got.Version, err, u.Version)
					}
				}
			}
			readAll("before") // fills the caches
			r.Pause(t)
			for i, u := range want {
				if i%3 == 0 {
					mustDelete(t, writer, u.ID, 1)
					want[i].Version = 2
					continue
				}
				want[i] = mustUpdate(t, writer, contract.UpdateRequest{ID: u.ID, Version: 1, Age: ptr(31)})
			}
			readAll("during the pause")
			r.Resume(t)
			// Read again and again as Redis comes back and catches up.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				readAll("after the pause")
			}
		})
	}
}

// newBareClient is a client of e with no session.
func newBareClient(t *testing.T, e *env) *messaging.Client {
	t.Helper()
	c, err := messaging.NewClient(connect(t, e.srv, "client-bare"), messaging.WithoutSession(), messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
