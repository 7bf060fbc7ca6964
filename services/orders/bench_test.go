package orders_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/benchload"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// BenchmarkOrdersCreate measures orders.create on an embedded server with
// the real users service (without a cache) and the orders service, each on
// its own in-process connection, and a client on a third. Every order is
// for one existing user and differs from the others in its SKU; no
// Idempotency-Key is sent. A create asks users.get whether the user exists,
// then appends order.placed to the ORDERS stream. See docs/performance.md.
func BenchmarkOrdersCreate(b *testing.B) {
	client, userID := benchStartOrders(b)
	var seq atomic.Int64
	call := func(ctx context.Context) error {
		req := contract.CreateRequest{
			UserID:   userID,
			Currency: "EUR",
			Items: []contract.Item{
				{SKU: "BENCH-" + strconv.FormatInt(seq.Add(1), 10), Quantity: 2, UnitPriceCents: 1250},
				{SKU: "pen_blue.2", Quantity: 3, UnitPriceCents: 999},
			},
		}
		o, err := contract.CreateOrder(ctx, client, req)
		if err != nil {
			return err
		}
		if o.ID == "" || o.TotalCents != 5497 {
			return fmt.Errorf("create: got order %q with total %d, want an id and 5497", o.ID, o.TotalCents)
		}
		return nil
	}
	for _, c := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { benchload.Run(b, c, call, benchload.SelfCPU) })
	}
}

// benchStartOrders starts an embedded server, users and orders, and
// creates the user the orders are for. Everything stops when b ends.
func benchStartOrders(b *testing.B) (*messaging.Client, string) {
	b.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatalf("start embedded server: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conn := func(name string) *nats.Conn {
		nc, err := srv.Connect("bench-" + name)
		if err != nil {
			b.Fatalf("connect %s: %v", name, err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	us, err := users.Start(ctx, conn("users"), users.Options{})
	if err != nil {
		b.Fatalf("start users: %v", err)
	}
	b.Cleanup(func() { benchStop(us.Stop) })
	osvc, err := orders.Start(ctx, conn("orders"), orders.Options{})
	if err != nil {
		b.Fatalf("start orders: %v", err)
	}
	b.Cleanup(func() { benchStop(osvc.Stop) })
	client, err := messaging.NewClient(conn("client"), messaging.WithTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	age := 36
	u, err := userscontract.CreateUser(ctx, client, userscontract.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.com", Age: &age})
	if err != nil {
		b.Fatalf("create the user to order for: %v", err)
	}
	return client, u.ID
}

func benchStop(stop func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = stop(ctx)
}
