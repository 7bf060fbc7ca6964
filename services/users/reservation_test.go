package users_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// clock is the wall clock moved forward by an offset the test sets.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time             { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)    { c.offset.Add(int64(d)) }
func (c *clock) install(svc *users.Service) { users.SetClock(svc, c.now) }

// emails opens the USERS_EMAILS bucket, as the service declared it.
func emails(t *testing.T, e *env) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), users.EmailBucket)
	if err != nil {
		t.Fatalf("open %s: %v", users.EmailBucket, err)
	}
	return kv
}

// emailKey is the bucket's key for email: the lower-case address, base64url
// encoded (see the bucket's description).
func emailKey(email string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(email)))
}

// reserve writes a reservation of email for id ("<id>:<version>", version
// 1 as for a create) directly into the bucket, as a write that crashed
// before appending its event would have left it.
func reserve(t *testing.T, kv jetstream.KeyValue, email, id string) {
	t.Helper()
	if _, err := kv.Put(t.Context(), emailKey(email), []byte(id+":1")); err != nil {
		t.Fatalf("reserve %s: %v", email, err)
	}
}

func owner(t *testing.T, kv jetstream.KeyValue, email string) string {
	t.Helper()
	entry, err := kv.Get(t.Context(), emailKey(email))
	if err != nil {
		t.Fatalf("read reservation of %s: %v", email, err)
	}
	id, _, _ := strings.Cut(string(entry.Value()), ":")
	return id
}

func TestStaleEmailReservation(t *testing.T) {
	t.Parallel()
	const email = "wanted@example.com"
	tests := []struct {
		name string
		// givenOwner returns the id the leftover reservation names.
		givenOwner func(t *testing.T, e *env) string
		// wantReclaimed: after ReservationGrace, the email is free.
		wantReclaimed bool
	}{
		{name: "owner never created", wantReclaimed: true, givenOwner: func(t *testing.T, e *env) string {
			return ulid.Make().String()
		}},
		{name: "owner has another email", wantReclaimed: true, givenOwner: func(t *testing.T, e *env) string {
			return mustCreate(t, e.client, "Ada", "ada@example.com", 36).ID
		}},
		{name: "owner deleted", wantReclaimed: true, givenOwner: func(t *testing.T, e *env) string {
			u := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
			mustDelete(t, e.client, u.ID, 0)
			return u.ID
		}},
		{name: "owner has the email", wantReclaimed: false, givenOwner: func(t *testing.T, e *env) string {
			return mustCreate(t, e.client, "Ada", email, 36).ID
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var clk clock
			clk.install(e.svc)
			kv := emails(t, e)
			alan := mustCreate(t, e.client, "Alan", "alan@example.com", 41)
			ownerID := tc.givenOwner(t, e)
			reserve(t, kv, email, ownerID)

			// Within the grace period a reservation is a write in flight.
			_, err := create(t.Context(), e.client, "Grace", strings.ToUpper(email), 30)
			checkErr(t, err, wire.ErrConflict, []string{"email"})
			_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: alan.ID, Version: 1, Email: ptr(email)})
			checkErr(t, err, wire.ErrConflict, []string{"email"})
			if got := owner(t, kv, email); got != ownerID {
				t.Fatalf("reservation owner = %s, want %s unchanged", got, ownerID)
			}

			clk.advance(users.ReservationGrace + time.Second)
			u, err := create(t.Context(), e.client, "Late", email, 30)
			if !tc.wantReclaimed {
				checkErr(t, err, wire.ErrConflict, []string{"email"})
				if got := owner(t, kv, email); got != ownerID {
					t.Errorf("reservation owner = %s, want %s: its user has the email", got, ownerID)
				}
				return
			}
			checkErr(t, err, nil, nil)
			if got := owner(t, kv, email); got != u.ID {
				t.Errorf("reservation owner = %s, want the new user %s", got, u.ID)
			}
			// Reclaimed, the email is the new user's like any other.
			_, err = update(t.Context(), e.client, contract.UpdateRequest{ID: alan.ID, Version: 1, Email: ptr(email)})
			checkErr(t, err, wire.ErrConflict, []string{"email"})
		})
	}
}

// TestStaleReservationForUpdate reclaims a leftover reservation through an
// update rather than a create.
func TestStaleReservationForUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var clk clock
	clk.install(e.svc)
	kv := emails(t, e)
	alan := mustCreate(t, e.client, "Alan", "alan@example.com", 41)
	reserve(t, kv, "wanted@example.com", ulid.Make().String())

	clk.advance(2 * users.ReservationGrace)
	got := mustUpdate(t, e.client, contract.UpdateRequest{ID: alan.ID, Version: 1, Email: ptr("wanted@example.com")})
	if got.Email != "wanted@example.com" || owner(t, kv, "wanted@example.com") != alan.ID {
		t.Errorf("update = %+v; reservation owner %s; want Alan to hold wanted@example.com", got, owner(t, kv, "wanted@example.com"))
	}
	if _, err := kv.Get(t.Context(), emailKey("alan@example.com")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("reservation of alan@example.com after Alan changed email: err = %v, want ErrKeyNotFound", err)
	}
}
