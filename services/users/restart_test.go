package users_test

import (
	"slices"
	"testing"

	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// First life: write, then stop everything.
	srv := startServer(t, dir)
	svc := startUsers(t, connect(t, srv, "users-1"))
	nc := connect(t, srv, "client-1")
	c := newClient(t, nc)
	ada := mustCreate(t, c, "Ada", "ada@example.com", 36)
	ada = mustUpdate(t, c, contract.UpdateRequest{ID: ada.ID, Version: 1, Name: ptr("Countess")})
	alan := mustCreate(t, c, "Alan", "alan@example.com", 41)
	gone := mustCreate(t, c, "Gone", "gone@example.com", 50)
	mustDelete(t, c, gone.ID, 0)
	stopUsers(t, svc)
	nc.Close()
	shutdown(t, srv)

	// Second life on the same store.
	srv = startServer(t, dir)
	startUsers(t, connect(t, srv, "users-2"))
	c = newClient(t, connect(t, srv, "client-2"))

	for _, want := range []contract.User{ada, alan} {
		if got := mustGet(t, c, want.ID); got != want {
			t.Errorf("get after restart = %+v, want %+v", got, want)
		}
	}
	_, err := get(t.Context(), c, gone.ID)
	checkErr(t, err, wire.ErrNotFound, nil)
	if got := listAll(t, c, 100); !slices.Equal(got, []contract.User{ada, alan}) {
		t.Errorf("list after restart = %+v, want Ada and Alan", got)
	}
	_, err = create(t.Context(), c, "Other Ada", "ADA@example.com", 20)
	checkErr(t, err, wire.ErrConflict, []string{"email"})
	_, err = update(t.Context(), c, contract.UpdateRequest{ID: alan.ID, Version: 1, Email: ptr("ada@example.com")})
	checkErr(t, err, wire.ErrConflict, []string{"email"})
	// Writes carry on from the stored versions.
	if got := mustUpdate(t, c, contract.UpdateRequest{ID: ada.ID, Version: 2, Age: ptr(37)}); got.Version != 3 {
		t.Errorf("update after restart: version %d, want 3", got.Version)
	}
	if _, err := create(t.Context(), c, "New", "gone@example.com", 20); err != nil {
		t.Errorf("create with a deleted user's email after restart: %v", err)
	}
}
