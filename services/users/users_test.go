package users_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := time.Now()
	u, err := create(t.Context(), e.client, "  Ada Lovelace  ", " ada@example.com ", 36)
	after := time.Now()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(u.ID) != 26 || !contract.ValidID(u.ID) {
		t.Errorf("id = %q, want a 26-character upper-case ULID", u.ID)
	}
	if _, err := ulid.ParseStrict(u.ID); err != nil {
		t.Errorf("id %q: %v", u.ID, err)
	}
	if u.Name != "Ada Lovelace" {
		t.Errorf("name = %q, want it trimmed to %q", u.Name, "Ada Lovelace")
	}
	if u.Email != "ada@example.com" {
		t.Errorf("email = %q, want it trimmed to %q", u.Email, "ada@example.com")
	}
	if u.Age != 36 || u.Version != 1 {
		t.Errorf("age, version = %d, %d, want 36, 1", u.Age, u.Version)
	}
	if !u.CreatedAt.Equal(u.UpdatedAt) {
		t.Errorf("created_at %v != updated_at %v", u.CreatedAt, u.UpdatedAt)
	}
	if u.CreatedAt.Before(before.Add(-time.Second)) || u.CreatedAt.After(after.Add(time.Second)) {
		t.Errorf("created_at %v is not around the call (%v .. %v)", u.CreatedAt, before, after)
	}
	if got := mustGet(t, e.client, u.ID); got != u {
		t.Errorf("get = %+v, want what create returned %+v", got, u)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	alan := mustCreate(t, e.client, "Alan", "alan@example.com", 41)

	tests := []struct {
		name     string
		givenID  string
		wantUser contract.User
		wantErr  error
	}{
		{name: "first user", givenID: ada.ID, wantUser: ada},
		{name: "second user", givenID: alan.ID, wantUser: alan},
		{name: "unknown id", givenID: ulid.Make().String(), wantErr: wire.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := get(t.Context(), e.client, tc.givenID)
			checkErr(t, err, tc.wantErr, nil)
			if got != tc.wantUser {
				t.Errorf("get = %+v, want %+v", got, tc.wantUser)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		givenName  *string
		givenEmail *string
		givenAge   *int
		want       func(u contract.User) contract.User // from the created user
	}{
		{name: "name only", givenName: ptr("  Countess Lovelace "),
			want: func(u contract.User) contract.User { u.Name = "Countess Lovelace"; return u }},
		{name: "email only", givenEmail: ptr(" countess@example.com"),
			want: func(u contract.User) contract.User { u.Email = "countess@example.com"; return u }},
		{name: "age only", givenAge: ptr(37),
			want: func(u contract.User) contract.User { u.Age = 37; return u }},
		{name: "age to zero", givenAge: ptr(0),
			want: func(u contract.User) contract.User { u.Age = 0; return u }},
		{name: "all fields", givenName: ptr("Augusta"), givenEmail: ptr("augusta@example.com"), givenAge: ptr(150),
			want: func(u contract.User) contract.User {
				u.Name, u.Email, u.Age = "Augusta", "augusta@example.com", 150
				return u
			}},
		{name: "own email in another case", givenEmail: ptr("ADA@Example.com"),
			want: func(u contract.User) contract.User { u.Email = "ADA@Example.com"; return u }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			created := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
			got := mustUpdate(t, e.client, contract.UpdateRequest{ID: created.ID, Version: 1,
				Name: tc.givenName, Email: tc.givenEmail, Age: tc.givenAge})

			want := tc.want(created)
			want.Version = 2
			want.UpdatedAt = got.UpdatedAt
			if got != want {
				t.Errorf("update = %+v, want %+v", got, want)
			}
			if got.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("updated_at went back: %v, was %v", got.UpdatedAt, created.UpdatedAt)
			}
			if !got.CreatedAt.Equal(created.CreatedAt) {
				t.Errorf("created_at changed: %v, was %v", got.CreatedAt, created.CreatedAt)
			}
			if read := mustGet(t, e.client, created.ID); read != got {
				t.Errorf("get after update = %+v, want %+v", read, got)
			}
		})
	}
}

func TestUpdateSuccessive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	for want := int64(2); want <= 5; want++ {
		u = mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ID, Version: u.Version, Age: ptr(u.Age + 1)})
		if u.Version != want {
			t.Fatalf("version = %d, want %d", u.Version, want)
		}
	}
	if u.Age != 40 {
		t.Errorf("age = %d, want 40 after four birthdays", u.Age)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		givenVersion int64
	}{
		{name: "without version", givenVersion: 0},
		{name: "at the current version", givenVersion: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			u := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
			mustDelete(t, e.client, u.ID, tc.givenVersion)

			_, err := get(t.Context(), e.client, u.ID)
			checkErr(t, err, wire.ErrNotFound, nil)
			_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: u.ID, Version: 1, Age: ptr(1)})
			checkErr(t, err, wire.ErrNotFound, nil)
			_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: u.ID, Version: 2, Age: ptr(1)})
			checkErr(t, err, wire.ErrNotFound, nil)
			_, err = remove(t.Context(), e.client, u.ID, 0)
			checkErr(t, err, wire.ErrNotFound, nil)
			_, err = remove(t.Context(), e.client, u.ID, 2)
			checkErr(t, err, wire.ErrNotFound, nil)
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if got := listAll(t, e.client, 0); len(got) != 0 {
		t.Fatalf("list of an empty service = %+v, want none", got)
	}
	ada := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	alan := mustCreate(t, e.client, "Alan", "alan@example.com", 41)
	alan = mustUpdate(t, e.client, contract.UpdateRequest{ID: alan.ID, Version: 1, Name: ptr("Alan Turing")})

	resp, err := list(t.Context(), e.client, contract.ListRequest{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(resp.Users) != 2 || resp.Users[0] != ada || resp.Users[1] != alan || resp.Next != "" {
		t.Errorf("list = %+v, want [%+v %+v] and no next", resp, ada, alan)
	}
}

// TestErrors covers the 404 and 409 answers: every case starts from Ada
// (ada@example.com, version 1) and Alan (alan@example.com, version 1).
func TestErrors(t *testing.T) {
	t.Parallel()
	type seed struct{ ada, alan contract.User }
	tests := []struct {
		name       string
		given      func(t *testing.T, e *env, u seed) error
		wantErr    error
		wantFields []string
	}{
		{name: "get unknown id", wantErr: wire.ErrNotFound, given: func(t *testing.T, e *env, u seed) error {
			_, err := get(t.Context(), e.client, ulid.Make().String())
			return err
		}},
		{name: "update unknown id", wantErr: wire.ErrNotFound, given: func(t *testing.T, e *env, u seed) error {
			_, err := update(t.Context(), e.client, contract.UpdateRequest{ID: ulid.Make().String(), Version: 1, Age: ptr(1)})
			return err
		}},
		{name: "delete unknown id", wantErr: wire.ErrNotFound, given: func(t *testing.T, e *env, u seed) error {
			_, err := remove(t.Context(), e.client, ulid.Make().String(), 0)
			return err
		}},
		{name: "update at a stale version", wantErr: wire.ErrConflict, wantFields: []string{"version"},
			given: func(t *testing.T, e *env, u seed) error {
				mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Age: ptr(37)})
				_, err := update(t.Context(), e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Age: ptr(38)})
				return err
			}},
		{name: "update at a future version", wantErr: wire.ErrConflict, wantFields: []string{"version"},
			given: func(t *testing.T, e *env, u seed) error {
				_, err := update(t.Context(), e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 2, Age: ptr(38)})
				return err
			}},
		{name: "delete at a stale version", wantErr: wire.ErrConflict, wantFields: []string{"version"},
			given: func(t *testing.T, e *env, u seed) error {
				mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Age: ptr(37)})
				_, err := remove(t.Context(), e.client, u.ada.ID, 1)
				return err
			}},
		{name: "create with a taken email", wantErr: wire.ErrConflict, wantFields: []string{"email"},
			given: func(t *testing.T, e *env, u seed) error {
				_, err := create(t.Context(), e.client, "Other Ada", "ada@example.com", 20)
				return err
			}},
		{name: "create with a taken email in another case", wantErr: wire.ErrConflict, wantFields: []string{"email"},
			given: func(t *testing.T, e *env, u seed) error {
				_, err := create(t.Context(), e.client, "Other Ada", "ADA@example.com", 20)
				return err
			}},
		{name: "update to a taken email", wantErr: wire.ErrConflict, wantFields: []string{"email"},
			given: func(t *testing.T, e *env, u seed) error {
				_, err := update(t.Context(), e.client, contract.UpdateRequest{ID: u.alan.ID, Version: 1, Email: ptr("Ada@Example.COM")})
				return err
			}},
		{name: "email is free after a delete", given: func(t *testing.T, e *env, u seed) error {
			mustDelete(t, e.client, u.ada.ID, 1)
			_, err := create(t.Context(), e.client, "New Ada", "ada@example.com", 20)
			return err
		}},
		{name: "email is free for an update after a delete", given: func(t *testing.T, e *env, u seed) error {
			mustDelete(t, e.client, u.ada.ID, 0)
			_, err := update(t.Context(), e.client, contract.UpdateRequest{ID: u.alan.ID, Version: 1, Email: ptr("ada@example.com")})
			return err
		}},
		{name: "old email is free after an email change", given: func(t *testing.T, e *env, u seed) error {
			mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Email: ptr("countess@example.com")})
			_, err := create(t.Context(), e.client, "New Ada", "ada@example.com", 20)
			return err
		}},
		{name: "new email is taken after an email change", wantErr: wire.ErrConflict, wantFields: []string{"email"},
			given: func(t *testing.T, e *env, u seed) error {
				mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Email: ptr("countess@example.com")})
				_, err := create(t.Context(), e.client, "Other", "Countess@example.com", 20)
				return err
			}},
		{name: "email kept in another case stays taken", wantErr: wire.ErrConflict, wantFields: []string{"email"},
			given: func(t *testing.T, e *env, u seed) error {
				mustUpdate(t, e.client, contract.UpdateRequest{ID: u.ada.ID, Version: 1, Email: ptr("ADA@example.com")})
				_, err := create(t.Context(), e.client, "Other", "ada@example.com", 20)
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			u := seed{
				ada:  mustCreate(t, e.client, "Ada", "ada@example.com", 36),
				alan: mustCreate(t, e.client, "Alan", "alan@example.com", 41),
			}
			checkErr(t, tc.given(t, e, u), tc.wantErr, tc.wantFields)
		})
	}
}
