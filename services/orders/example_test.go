package orders_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// Start users and orders on an embedded server, then place an order for a
// new user through the typed client.
func Example() {
	dir, err := os.MkdirTemp("", "orders-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, err := srv.Connect("example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	us, err := users.Start(ctx, nc, users.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer us.Stop(ctx)
	svc, err := orders.Start(ctx, nc, orders.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop(ctx)

	client, err := messaging.NewClient(nc, messaging.WithTimeout(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	age := 36
	ada, err := userscontract.CreateUser(ctx, client, userscontract.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.com", Age: &age})
	if err != nil {
		fmt.Println(err)
		return
	}
	o, err := contract.CreateOrder(ctx, client, contract.CreateRequest{
		UserID:   ada.ID,
		Currency: "EUR",
		Items: []contract.Item{
			{SKU: "NOTEBOOK", Quantity: 2, UnitPriceCents: 1250},
			{SKU: "PENCIL", Quantity: 3, UnitPriceCents: 999},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.Status, o.TotalCents, o.Currency)

	_, err = contract.CreateOrder(ctx, client, contract.CreateRequest{
		UserID:   ada.ID,
		Currency: "DEM",
		Items:    []contract.Item{{SKU: "NOTEBOOK", Quantity: 1, UnitPriceCents: 1250}},
	})
	fmt.Println(err)
	// Output:
	// placed 5497 EUR
	// 400 invalid request: currency: must be an ISO 4217 currency code in use, upper case, like EUR or USD
}
