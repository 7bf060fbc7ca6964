package orders_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

func TestRestartKeepsOrders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// First life: write, then stop everything.
	srv := startServer(t, dir)
	us := startUsers(t, connect(t, srv, "users-1"))
	svc := startOrders(t, connect(t, srv, "orders-1"))
	nc := connect(t, srv, "client-1")
	c := newClient(t, nc)
	ada := mustCreateUser(t, c, "Ada", "ada@example.com")
	alan := mustCreateUser(t, c, "Alan", "alan@example.com")
	open, err := create(t.Context(), c, order(ada.ID), wire.WithIdempotencyKey("cart-1"))
	if err != nil {
		t.Fatal(err)
	}
	cancelled := mustCreate(t, c, order(ada.ID))
	cancelled = mustCancel(t, c, contract.CancelRequest{ID: cancelled.ID, Version: 1, Reason: "before the restart"})
	alans := mustCreate(t, c, order(alan.ID))
	waitHandled(t, c, 2) // both users' creation, so the restart does not redeliver them
	stopOrders(t, svc)
	stopUsers(t, us)
	nc.Close()
	shutdown(t, srv)

	// Second life on the same store.
	srv = startServer(t, dir)
	startUsers(t, connect(t, srv, "users-2"))
	startOrders(t, connect(t, srv, "orders-2"))
	c = newClient(t, connect(t, srv, "client-2"))

	for _, want := range []contract.Order{open, cancelled, alans} {
		if got := mustGet(t, c, want.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("get after restart = %+v, want %+v", got, want)
		}
	}
	if got := listAll(t, c, ada.ID, 1); !reflect.DeepEqual(got, []contract.Order{open, cancelled}) {
		t.Errorf("list after restart = %q, want %q", ids(got), []string{open.ID, cancelled.ID})
	}
	// The idempotency key is remembered.
	retry, err := create(t.Context(), c, order(ada.ID), wire.WithIdempotencyKey("cart-1"))
	if err != nil || !reflect.DeepEqual(retry, open) {
		t.Errorf("retry after restart = %+v, %v; want %+v", retry, err, open)
	}
	// Writes carry on from the stored versions and ids.
	_, err = cancelOrder(t.Context(), c, contract.CancelRequest{ID: cancelled.ID, Version: 2})
	checkErr(t, err, wire.ErrConflict, nil)
	newer := mustCreate(t, c, order(ada.ID))
	if got := ids(listAll(t, c, ada.ID, 0)); !slices.Equal(got, []string{open.ID, cancelled.ID, newer.ID}) {
		t.Errorf("list after a create = %q, want %q", got, []string{open.ID, cancelled.ID, newer.ID})
	}

	// The durable consumer resumes where it was: it handles the deletion,
	// and nothing from the first life again.
	mustDeleteUser(t, c, ada.ID)
	waitCancelledByDeletion(t, c, []contract.Order{open, newer})
	if got := mustGet(t, c, cancelled.ID); !reflect.DeepEqual(got, cancelled) {
		t.Errorf("order cancelled before the restart = %+v, want it unchanged: %+v", got, cancelled)
	}
	var st messaging.ConsumerStats
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if st, err = userEventsStats(t, c); err != nil {
			return err
		}
		if st.Handled < 1 || st.Pending != 0 || st.AckPending != 0 {
			return fmt.Errorf("consumer stats %+v: want the deletion handled, nothing pending", st)
		}
		return nil
	})
	if st.Handled != 1 {
		t.Errorf("consumer handled %d user events after the restart, want only the deletion: %+v", st.Handled, st)
	}
}
