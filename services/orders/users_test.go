package orders_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/orders/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// checkNoSuchUser checks that err is the 400 naming user_id that an order
// for a user who does not exist gets.
func checkNoSuchUser(t *testing.T, err error) {
	t.Helper()
	checkErr(t, err, wire.ErrBadRequest, []string{"user_id"})
	var e *wire.Error
	if errors.As(err, &e) && e.Details[0].Message != "no such user" {
		t.Errorf("user_id detail = %q, want %q", e.Details[0].Message, "no such user")
	}
}

func TestCreateForUnknownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	_, err := create(t.Context(), e.client, order(ulid.Make().String()))
	checkNoSuchUser(t, err)

	gone := mustCreateUser(t, e.client, "Gone", "gone@example.com")
	mustDeleteUser(t, e.client, gone.ID)
	_, err = create(t.Context(), e.client, order(gone.ID))
	checkNoSuchUser(t, err)
	if got := listAll(t, e.client, gone.ID, 0); len(got) != 0 {
		t.Errorf("orders of a deleted user = %+v, want none", got)
	}
}

// TestUsersDown checks that, with nobody serving users.get, create fails
// at once with 503 and reads carry on.
func TestUsersDown(t *testing.T) {
	t.Parallel()
	t.Run("never started", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, t.TempDir())
		startOrders(t, connect(t, srv, "orders"))
		c := newClient(t, connect(t, srv, "client"))

		start := time.Now()
		_, err := create(t.Context(), c, order(ulid.Make().String()))
		t.Logf("create answered in %s: %v", time.Since(start), err)
		checkErr(t, err, wire.ErrUnavailable, nil)
	})
	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
		placed := mustCreate(t, e.client, order(ada.ID))
		stopUsers(t, e.users)

		start := time.Now()
		_, err := create(t.Context(), e.client, order(ada.ID))
		t.Logf("create answered in %s: %v", time.Since(start), err)
		checkErr(t, err, wire.ErrUnavailable, nil)

		if got := mustGet(t, e.client, placed.ID); !reflect.DeepEqual(got, placed) {
			t.Errorf("get with users down = %+v, want %+v", got, placed)
		}
		if got := listAll(t, e.client, ada.ID, 0); len(got) != 1 || got[0].ID != placed.ID {
			t.Errorf("list with users down = %q, want [%s]", ids(got), placed.ID)
		}
		if got := mustCancel(t, e.client, contract.CancelRequest{ID: placed.ID, Version: 1}); got.Status != contract.StatusCancelled {
			t.Errorf("cancel with users down: status %q, want cancelled", got.Status)
		}
	})
}

// TestUsersSlow puts a users.get responder that never answers in place of
// users: create fails with 503 once orders' own bound on the call passes,
// not with the caller's 504, and users.get sees the caller's deadline.
func TestUsersSlow(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	startOrders(t, connect(t, srv, "orders"))
	c2 := connect(t, srv, "client")
	c := newClient(t, c2)

	fake := connect(t, srv, "slow-users")
	received := make(chan nats.Header, 1)
	_, err := fake.QueueSubscribe(userscontract.SubjectGet, "q", func(m *nats.Msg) {
		select {
		case received <- m.Header:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	callerDeadline, _ := ctx.Deadline()
	start := time.Now()
	_, err = create(ctx, c, order(ulid.Make().String()))
	t.Logf("create answered in %s (orders bounds users calls at 2s; the caller allowed 5s): %v", time.Since(start), err)
	checkErr(t, err, wire.ErrUnavailable, nil)
	if errors.Is(err, wire.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v: the caller's deadline passed", err)
	}

	var h nats.Header
	select {
	case h = <-received:
	default:
		t.Fatal("the fake users.get responder received nothing")
	}
	got, err := wire.ParseDeadline(h.Get(wire.HeaderDeadline))
	if err != nil {
		t.Fatalf("users.get request: %v", err)
	}
	t.Logf("users.get deadline %s, caller's %s", got.Format(time.RFC3339Nano), callerDeadline.UTC().Format(time.RFC3339Nano))
	if got.After(callerDeadline) {
		t.Errorf("users.get deadline %s is after the caller's %s", got, callerDeadline)
	}
	if h.Get(wire.HeaderRequestID) == "" {
		t.Errorf("users.get request carries no %s", wire.HeaderRequestID)
	}

	// A caller whose own deadline is shorter than orders' bound on users
	// gets a 504: its budget, not users, ran out. Raw, so that the client's
	// own timer cannot answer first.
	hdr := nats.Header{}
	hdr.Set(wire.HeaderDeadline, wire.FormatDeadline(time.Now().Add(300*time.Millisecond)))
	body := []byte(`{"user_id":"` + ulid.Make().String() + `","items":[{"sku":"a","quantity":1,"unit_price_cents":1}],"currency":"EUR"}`)
	reply, err := c2.RequestMsg(&nats.Msg{Subject: "orders.create", Header: hdr, Data: body}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get(wire.HeaderErrorCode); code != "504" {
		t.Errorf("short caller deadline: code %q (%s), want 504", code, reply.Data)
	}
}
