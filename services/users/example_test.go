package users_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// Start the users service on an embedded server and create a user through
// the typed client.
func Example() {
	dir, err := os.MkdirTemp("", "users-example")
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

	svc, err := users.Start(ctx, nc, users.Options{})
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
	u, err := contract.CreateUser(ctx, client, contract.CreateRequest{Name: " Ada Lovelace ", Email: "ada@example.com", Age: &age})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(u.Name, u.Version)

	_, err = contract.CreateUser(ctx, client, contract.CreateRequest{Name: "Impostor", Email: "ADA@example.com", Age: &age})
	fmt.Println(err)
	// Output:
	// Ada Lovelace 1
	// 409 email already taken: email: another user has this email
}
