package orders

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// checkedBefore answers the first check as it was before a concurrent
// delete (the user existed), and the check after placing from the real
// users client.
type checkedBefore struct{ usersClient }

func (checkedBefore) Exists(context.Context, string) error { return nil }

// An order placed for a user deleted between orders.create's check and the
// order's event (so after the delete's cascade ran) does not stay placed:
// the check after placing cancels it, and the caller is told there is no
// such user.
func TestOrderPlacedWhileItsUserIsDeletedIsCancelled(t *testing.T) {
	srv := embeddedtest.Start(t, t.TempDir())
	us, err := users.Start(context.Background(), embeddedtest.Connect(t, srv, "users"), users.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = us.Stop(context.Background()) })
	nc := embeddedtest.Connect(t, srv, "orders")
	es, err := eventstore.Open(t.Context(), nc, entity())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(es.Close)
	s := &store{es: es, now: time.Now}
	client, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	age := 36
	ada, err := userscontract.CreateUser(t.Context(), client, userscontract.CreateRequest{Name: "Ada", Email: "ada@example.com", Age: &age})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := userscontract.DeleteUser(t.Context(), client, userscontract.DeleteRequest{ID: ada.ID}); err != nil {
		t.Fatal(err)
	}

	create := handleCreate(s, checkedBefore{usersClient{client: client, js: js, timeout: time.Second}})
	_, err = create(t.Context(), contract.CreateRequest{UserID: ada.ID, Currency: "EUR",
		Items: []contract.Item{{SKU: "BOOK-1", Quantity: 1, UnitPriceCents: 100}}})
	if !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("create = %v, want ErrNoSuchUser", err)
	}
	page, err := s.es.List(t.Context(), eventstore.Query{Listing: ada.ID, Limit: 10})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("orders of the deleted user = %+v, %v; want the one placed", page.Records, err)
	}
	if o := page.Records[0].State; o.Status != contract.StatusCancelled || o.CancelReason != cancelUserDeleted {
		t.Fatalf("the order is %s (%q), want cancelled because the user was deleted", o.Status, o.CancelReason)
	}
}
