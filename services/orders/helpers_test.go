package orders_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// env is one test's world: its own embedded server, a real users service,
// an orders service, each on its own connection, and a client on a third.
type env struct {
	srv    *embedded.Server
	nc     *nats.Conn // the client's connection
	client *messaging.Client
	users  *users.Service
	orders *orders.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := startServer(t, t.TempDir())
	us := startUsers(t, connect(t, srv, "users"))
	svc := startOrders(t, connect(t, srv, "orders"))
	nc := connect(t, srv, "client")
	return &env{srv: srv, nc: nc, client: newClient(t, nc), users: us, orders: svc}
}

// model is what the tests run under: the services' own NATS permissions,
// and the client role's for callers (docs/security.md).
func model() natsauth.Model { return natsauth.NewModel(users.Access(), orders.Access()) }

// startServer starts an embedded server with JetStream on dir that
// enforces model, shut down when the test ends (Shutdown may be called
// earlier; it is idempotent).
func startServer(t *testing.T, dir string) *embedded.Server {
	return embeddedtest.StartSecure(t, dir, model())
}

func shutdown(t *testing.T, srv *embedded.Server) { embeddedtest.Shutdown(t, srv) }

// connect connects as the identity name starts with: orders, operator or
// client; anything else that names users (a stand-in too) as users.
func connect(t *testing.T, srv *embedded.Server, name string) *nats.Conn {
	user := users.Access().User
	for _, id := range []string{orders.Access().User, natsauth.ClientUser, natsauth.OperatorUser} {
		if strings.HasPrefix(name, id) {
			user = id
		}
	}
	g, _ := model().Grant(user)
	return embeddedtest.ConnectAs(t, srv, g, t.Name()+"/"+name)
}

// startUsers starts the real users service on nc, stopped when the test
// ends (stopUsers may be called earlier: a second Stop is harmless).
func startUsers(t *testing.T, nc *nats.Conn) *users.Service {
	t.Helper()
	svc, err := users.Start(context.Background(), nc, users.Options{})
	if err != nil {
		t.Fatalf("start users: %v", err)
	}
	t.Cleanup(func() { stopUsers(t, svc) })
	return svc
}

func stopUsers(t *testing.T, svc *users.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := svc.Stop(ctx); err != nil {
		t.Errorf("stop users: %v", err)
	}
}

// startOrders starts the orders service on nc, stopped when the test ends.
// Stopping it twice is harmless: its micro service and consumer remember
// the first Stop.
func startOrders(t *testing.T, nc *nats.Conn) *orders.Service {
	t.Helper()
	svc, err := orders.Start(context.Background(), nc, orders.Options{})
	if err != nil {
		t.Fatalf("start orders: %v", err)
	}
	t.Cleanup(func() { stopOrders(t, svc) })
	return svc
}

func stopOrders(t *testing.T, svc *orders.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := svc.Stop(ctx); err != nil {
		t.Errorf("stop orders: %v", err)
	}
}

func newClient(t *testing.T, nc *nats.Conn) *messaging.Client {
	t.Helper()
	c, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

// The typed calls. The must* forms fail the test on error.

func createUser(ctx context.Context, c *messaging.Client, name, email string) (userscontract.User, error) {
	age := 36
	return userscontract.CreateUser(ctx, c, userscontract.CreateRequest{Name: name, Email: email, Age: &age})
}

func mustCreateUser(t *testing.T, c *messaging.Client, name, email string) userscontract.User {
	t.Helper()
	u, err := createUser(t.Context(), c, name, email)
	if err != nil {
		t.Fatalf("create user %s <%s>: %v", name, email, err)
	}
	return u
}

func mustDeleteUser(t *testing.T, c *messaging.Client, id string) {
	t.Helper()
	_, err := wire.Call[userscontract.DeleteRequest, userscontract.DeleteResponse](t.Context(), c,
		userscontract.SubjectDelete, userscontract.DeleteRequest{ID: id})
	if err != nil {
		t.Fatalf("delete user %s: %v", id, err)
	}
}

func create(ctx context.Context, c *messaging.Client, req contract.CreateRequest, opts ...wire.CallOption) (contract.Order, error) {
	return contract.CreateOrder(ctx, c, req, opts...)
}

func get(ctx context.Context, c *messaging.Client, id string) (contract.Order, error) {
	return contract.GetOrder(ctx, c, contract.GetRequest{ID: id})
}

func list(ctx context.Context, c *messaging.Client, req contract.ListRequest) (contract.ListResponse, error) {
	return contract.ListOrders(ctx, c, req)
}

func cancelOrder(ctx context.Context, c *messaging.Client, req contract.CancelRequest) (contract.Order, error) {
	return contract.CancelOrder(ctx, c, req)
}

func consumerStats(ctx context.Context, c *messaging.Client) (map[string]messaging.ConsumerStats, error) {
	return wire.Call[struct{}, map[string]messaging.ConsumerStats](ctx, c, contract.ServiceName+".consumers", struct{}{})
}

// order is a valid create request for user: 2×12.50 + 3×9.99 EUR.
func order(userID string) contract.CreateRequest {
	return contract.CreateRequest{
		UserID:   userID,
		Currency: "EUR",
		Items: []contract.Item{
			{SKU: "BOOK-1", Quantity: 2, UnitPriceCents: 1250},
			{SKU: "pen_blue.2", Quantity: 3, UnitPriceCents: 999},
		},
	}
}

func mustCreate(t *testing.T, c *messaging.Client, req contract.CreateRequest) contract.Order {
	t.Helper()
	o, err := create(t.Context(), c, req)
	if err != nil {
		t.Fatalf("create order for %s: %v", req.UserID, err)
	}
	return o
}

func mustGet(t *testing.T, c *messaging.Client, id string) contract.Order {
	t.Helper()
	o, err := get(t.Context(), c, id)
	if err != nil {
		t.Fatalf("get order %s: %v", id, err)
	}
	return o
}

func mustCancel(t *testing.T, c *messaging.Client, req contract.CancelRequest) contract.Order {
	t.Helper()
	o, err := cancelOrder(t.Context(), c, req)
	if err != nil {
		t.Fatalf("cancel order %s at version %d: %v", req.ID, req.Version, err)
	}
	return o
}

// listAll pages through orders.list for user with the given page size and
// returns every order in the order received.
func listAll(t *testing.T, c *messaging.Client, userID string, limit int) []contract.Order {
	t.Helper()
	var all []contract.Order
	after := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("list: more than 1000 pages; the cursor does not advance")
		}
		resp, err := list(t.Context(), c, contract.ListRequest{UserID: userID, Limit: limitOf(limit), After: after})
		if err != nil {
			t.Fatalf("list %s after %q: %v", userID, after, err)
		}
		all = append(all, resp.Orders...)
		if resp.Next == "" {
			return all
		}
		after = resp.Next
	}
}

func ids(all []contract.Order) []string {
	out := make([]string, len(all))
	for i, o := range all {
		out[i] = o.ID
	}
	return out
}

// detailFields returns the fields of err's details, or an error when err is
// not a *wire.Error.
func detailFields(err error) ([]string, error) {
	var e *wire.Error
	if !errors.As(err, &e) {
		return nil, fmt.Errorf("error %v (%T) is not a *wire.Error", err, err)
	}
	fields := make([]string, len(e.Details))
	for i, d := range e.Details {
		fields[i] = d.Field
	}
	return fields, nil
}

// checkErr checks that err matches want (a messaging sentinel, or nil) and,
// when wantFields is not nil, that its details name exactly those fields.
func checkErr(t *testing.T, err, want error, wantFields []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if wantFields == nil {
		return
	}
	fields, ferr := detailFields(err)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if !slices.Equal(fields, wantFields) {
		t.Fatalf("detail fields = %q, want %q (err: %v)", fields, wantFields, err)
	}
}

const racers = 20

// race runs f(i) for i in 0..n-1 at once and returns the results.
func race[T any](n int, f func(i int) (T, error)) ([]T, []error) {
	results, errs := make([]T, n), make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			results[i], errs[i] = f(i)
		})
	}
	start.Done()
	done.Wait()
	return results, errs
}

// limitOf is a list limit: nil (the default) for 0.
func limitOf(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
