package users_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

const racers = 20

// race runs f(i) for i in 0..n-1 at once and returns the results.
func race[T any](n int, f func(i int) (T, error)) ([]T, []error) {
	results, errs := make([]T, n), make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			results[i], errs[i] = f(i)
		})
	}
	start.Done()
	done.Wait()
	return results, errs
}

// oneWinner checks that exactly one call succeeded and every other one
// failed with ErrConflict, and returns the winner's index.
func oneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("calls %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, wire.ErrConflict):
			t.Errorf("call %d: err = %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no call succeeded: %v", errs)
	}
	return winner
}

func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := mustCreate(t, e.client, "Ada", "ada@example.com", 36)

	results, errs := race(racers, func(i int) (contract.User, error) {
		return update(t.Context(), e.client, contract.UpdateRequest{ID: u.ID, Version: 1, Name: ptr(fmt.Sprintf("Ada %d", i))})
	})
	w := oneWinner(t, errs)
	got := mustGet(t, e.client, u.ID)
	if got.Version != 2 || got != results[w] {
		t.Errorf("get = %+v, want the winner's update %+v at version 2", got, results[w])
	}
}

// TestConcurrentEmailUpdates races updates of one user to the same new
// email: the losers must not release the reservation the winner now needs.
func TestConcurrentEmailUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := mustCreate(t, e.client, "Ada", "ada@example.com", 36)

	results, errs := race(racers, func(i int) (contract.User, error) {
		return update(t.Context(), e.client, contract.UpdateRequest{ID: u.ID, Version: 1, Email: ptr("countess@example.com"), Age: ptr(i)})
	})
	w := oneWinner(t, errs)
	if got := mustGet(t, e.client, u.ID); got != results[w] || got.Email != "countess@example.com" {
		t.Fatalf("get = %+v, want the winner's update %+v", got, results[w])
	}
	_, err := create(t.Context(), e.client, "Impostor", "countess@example.com", 20)
	checkErr(t, err, wire.ErrConflict, []string{"email"})
	if _, err := create(t.Context(), e.client, "New Ada", "ada@example.com", 20); err != nil {
		t.Errorf("create with the old email: %v; want it free after the winning update", err)
	}
}

func TestConcurrentCreatesOneEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	results, errs := race(racers, func(i int) (contract.User, error) {
		// Different cases of one address are one email.
		email := "ada@example.com"
		if i%2 == 1 {
			email = "ADA@Example.com"
		}
		return create(t.Context(), e.client, fmt.Sprintf("Ada %d", i), email, 36)
	})
	w := oneWinner(t, errs)
	all := listAll(t, e.client, 100)
	if len(all) != 1 || all[0] != results[w] {
		t.Errorf("list = %+v, want only the winner %+v", all, results[w])
	}
}

func TestConcurrentCreatesOneIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	results, errs := race(racers, func(i int) (contract.User, error) {
		return create(t.Context(), e.client, "Ada", "ada@example.com", 36, wire.WithIdempotencyKey("create-ada-1"))
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	for i, u := range results {
		if u != results[0] {
			t.Errorf("create %d returned %+v, want the same user as create 0: %+v", i, u, results[0])
		}
	}
	all := listAll(t, e.client, 100)
	if len(all) != 1 || all[0] != results[0] {
		t.Errorf("list = %+v, want exactly the one user %+v", all, results[0])
	}
}

func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	key := wire.WithIdempotencyKey("create-ada-2")
	first, err := create(ctx, e.client, "Ada", "ada@example.com", 36, key)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		givenCall func(context.Context) (contract.User, error)
		wantUser  contract.User
		wantErr   error
	}{
		{name: "same body", wantUser: first, givenCall: func(ctx context.Context) (contract.User, error) {
			return create(ctx, e.client, "Ada", "ada@example.com", 36, key)
		}},
		// The key was used for another request: refused, not answered
		// with someone else's user (IETF idempotency-key draft: 422).
		{name: "different body", wantErr: wire.ErrUnprocessable, givenCall: func(ctx context.Context) (contract.User, error) {
			return create(ctx, e.client, "Alan", "alan@example.com", 41, key)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.givenCall(t.Context())
			checkErr(t, err, tc.wantErr, nil)
			if got != tc.wantUser {
				t.Errorf("retry = %+v, want the first create's user %+v", got, tc.wantUser)
			}
		})
	}
	t.Run("after an update the retry returns the current state", func(t *testing.T) {
		updated := mustUpdate(t, e.client, contract.UpdateRequest{ID: first.ID, Version: 1, Age: ptr(37)})
		got, err := create(t.Context(), e.client, "Ada", "ada@example.com", 36, key)
		checkErr(t, err, nil, nil)
		if got != updated {
			t.Errorf("retry = %+v, want %+v", got, updated)
		}
	})
	t.Run("another key makes another user", func(t *testing.T) {
		got, err := create(t.Context(), e.client, "Alan", "alan@example.com", 41, wire.WithIdempotencyKey("create-alan"))
		checkErr(t, err, nil, nil)
		if got.ID == first.ID || got.Name != "Alan" {
			t.Errorf("create with a new key = %+v, want a new user Alan", got)
		}
	})
	if got := listAll(t, e.client, 100); len(got) != 2 {
		t.Errorf("list has %d users, want 2 (Ada once, Alan once)", len(got))
	}
}

// TestEmailChurn has writers flip one user's email between two addresses
// at once, so that one update's release of the address it left races
// another update taking that address back. Whatever the interleaving, the
// email the user ends with must still be reserved: another user cannot
// take it. (Before the fix, a few rounds in a hundred lost the reservation.)
func TestEmailChurn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const rounds, writers, flips = 100, 4, 10
	// Bounded in time too: the race detector makes a round ten times slower.
	start := time.Now()
	for round := 0; round < rounds && (round < 10 || time.Since(start) < 3*time.Second); round++ {
		x, y := fmt.Sprintf("x%d@example.com", round), fmt.Sprintf("y%d@example.com", round)
		u := mustCreate(t, e.client, "Flipper", x, 30)
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for range flips {
					cur, err := get(t.Context(), e.client, u.ID)
					if err != nil {
						t.Errorf("get: %v", err)
						return
					}
					next := x
					if cur.Email == x {
						next = y
					}
					_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: u.ID, Version: cur.Version, Email: &next})
					if err != nil && !errors.Is(err, wire.ErrConflict) {
						t.Errorf("update: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		final := mustGet(t, e.client, u.ID)
		_, err := create(t.Context(), e.client, "Intruder", final.Email, 30)
		if !errors.Is(err, wire.ErrConflict) {
			t.Fatalf("round %d: the user has %s at version %d, yet creating another user with it: err = %v, want ErrConflict",
				round, final.Email, final.Version, err)
		}
	}
}
