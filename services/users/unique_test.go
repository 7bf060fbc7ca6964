package users_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Email uniqueness is a claim plus the user's state, with fences (see
// eventstore/write.go): a claim left over holds nothing, and there is no
// grace period and no clock in it. These tests are the regressions of the
// races the earlier reservation design had (docs/guarantees.md).

// Two replicas, one of them with a clock 90 s ahead, race creates with the
// same email: exactly one of each pair wins.
func TestConcurrentCreatesOneEmailOneWinner(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	startUsers(t, connect(t, srv, "users-a"))
	b := startUsers(t, connect(t, srv, "users-b"))
	users.SetClock(b, func() time.Time { return time.Now().Add(90 * time.Second) })
	c := newClient(t, connect(t, srv, "client"))
	const pairs = 40
	var wins, taken atomic.Int64
	var wg sync.WaitGroup
	for i := range pairs {
		email := fmt.Sprintf("race-%d@example.com", i)
		for range 2 {
			wg.Go(func() {
				_, err := create(t.Context(), c, "Racer", email, 30)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, wire.ErrConflict):
					taken.Add(1)
				default:
					t.Errorf("create %s: %v", email, err)
				}
			})
		}
	}
	wg.Wait()
	if wins.Load() != pairs || taken.Load() != pairs {
		t.Fatalf("%d creates won, %d refused; want %d each", wins.Load(), taken.Load(), pairs)
	}
	assertUniqueEmails(t, c)
}

// A user changing to an email while someone signs up with it: one of them
// gets it, never both, whatever the interleaving.
func TestUpdateAndCreateRaceForOneEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 30 {
		email := fmt.Sprintf("wanted-%d@example.com", i)
		alan := mustCreate(t, e.client, "Alan", fmt.Sprintf("alan-%d@example.com", i), 41)
		var wg sync.WaitGroup
		var updated, created error
		wg.Go(func() {
			_, updated = update(t.Context(), e.client, contract.UpdateRequest{ID: alan.ID, Version: 1, Email: ptr(email)})
		})
		wg.Go(func() { _, created = create(t.Context(), e.client, "Grace", email, 30) })
		wg.Wait()
		if (updated == nil) == (created == nil) {
			t.Fatalf("round %d: update %v, create %v; want exactly one to succeed", i, updated, created)
		}
		for _, err := range []error{updated, created} {
			if err != nil && !errors.Is(err, wire.ErrConflict) {
				t.Fatalf("round %d: %v", i, err)
			}
		}
	}
	assertUniqueEmails(t, e.client)
}

// An email is free again once its user gave it up (an update to another
// email, a delete), and not before; comparisons ignore case.
func TestEmailIsFreedByUpdateAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	_, err := create(t.Context(), e.client, "Other", "ADA@Example.com", 20)
	checkErr(t, err, wire.ErrConflict, []string{"email"})

	ada = mustUpdate(t, e.client, contract.UpdateRequest{ID: ada.ID, Version: 1, Email: ptr("countess@example.com")})
	grace := mustCreate(t, e.client, "Grace", "ada@example.com", 30)
	_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: grace.ID, Version: 1, Email: ptr("Countess@example.com")})
	checkErr(t, err, wire.ErrConflict, []string{"email"})

	// Changing only the case of one's own email is no change of holder.
	ada = mustUpdate(t, e.client, contract.UpdateRequest{ID: ada.ID, Version: 2, Email: ptr("COUNTESS@example.com")})
	mustDelete(t, e.client, ada.ID, 0)
	if _, err := create(t.Context(), e.client, "New", "countess@example.com", 20); err != nil {
		t.Fatalf("create with a deleted user's email: %v", err)
	}
	assertUniqueEmails(t, e.client)
}

// assertUniqueEmails lists every user and fails on two with one email.
func assertUniqueEmails(t *testing.T, c *messaging.Client) {
	t.Helper()
	seen := map[string]string{}
	for _, u := range listAll(t, c, 100) {
		email := contract.NormalizeEmail(u.Email)
		if other, ok := seen[email]; ok {
			t.Errorf("users %s and %s both hold %s", other, u.ID, email)
		}
		seen[email] = u.ID
	}
}
