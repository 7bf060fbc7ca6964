package users_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// TestIdempotencyKeyBoundToCaller: a key is the caller's (its NATS user,
// named by its inbox prefix, which it alone may subscribe under) and the
// request's. Another NATS user reusing the key gets a 422, not the first
// caller's user; one that forges the first caller's reply subject gets
// nothing, since the answer goes to an inbox it cannot read.
func TestIdempotencyKeyBoundToCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := wire.WithHeader(wire.HeaderIdempotencyKey, "order-42")
	age := 36
	req := contract.CreateRequest{Name: "Ada", Email: "ada@example.com", Age: &age}
	first, err := contract.CreateUser(t.Context(), e.client, req, key)
	if err != nil {
		t.Fatal(err)
	}
	again, err := contract.CreateUser(t.Context(), e.client, req, key)
	if err != nil || again != first {
		t.Errorf("retry by the same caller = %+v, %v; want the first result %+v", again, err, first)
	}
	other := newClient(t, connect(t, e.srv, otherCaller.User))
	got, err := contract.CreateUser(t.Context(), other, req, key)
	if !errors.Is(err, wire.ErrUnprocessable) || got.ID == first.ID {
		t.Errorf("the same key by another NATS user = %+v, %v; want a 422 and not the first caller's user", got, err)
	}
	changed := req
	changed.Name = "Grace"
	if _, err := contract.CreateUser(t.Context(), e.client, changed, key); !errors.Is(err, wire.ErrUnprocessable) {
		t.Errorf("the same key for another request: %v, want a 422", err)
	}

	// The other user forges the client's reply subject: the answer, the
	// first caller's user, goes where it cannot subscribe.
	nc := connect(t, e.srv, otherCaller.User+"-forger")
	forgedInbox := natsauth.ClientInbox + ".forged"
	refused := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err })
	if _, err := nc.SubscribeSync(forgedInbox); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribing to the client's inbox: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscribing to the client's inbox was not refused")
	}
	msg := nats.NewMsg(contract.SubjectCreate)
	msg.Reply = forgedInbox
	msg.Header.Set(wire.HeaderIdempotencyKey, "order-42")
	msg.Data = []byte(`{"name":"Ada","email":"ada@example.com","age":36}`)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	// What it can read, its own inbox, gets nothing.
	own, err := nc.SubscribeSync(natsauth.InboxPrefix(otherCaller.User) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := own.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("the forger read an answer: %s", m.Data)
	}
}
