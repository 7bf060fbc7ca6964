package users_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// env is one test's world: its own embedded server, a users service and a
// client on a separate connection.
type env struct {
	srv    *embedded.Server
	nc     *nats.Conn // the client's connection
	client *messaging.Client
	svc    *users.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := startServer(t, t.TempDir())
	svc := startUsers(t, connect(t, srv, "users"))
	nc := connect(t, srv, "client")
	return &env{srv: srv, nc: nc, client: newClient(t, nc), svc: svc}
}

// model is what the tests run under: the users service's own NATS
// permissions, and the client role's for callers (docs/security.md).
func model() natsauth.Model {
	return natsauth.NewModel(users.Access(), otherCaller)
}

// otherCaller is a second NATS user that may create users, with an inbox
// of its own: another caller than the client role.
var otherCaller = natsauth.Grant{User: "other", Description: "another caller", Calls: []string{contract.SubjectCreate}}

// startServer starts an embedded server with JetStream on dir that
// enforces model, shut down when the test ends (Shutdown may be called
// earlier; it is idempotent).
func startServer(t *testing.T, dir string) *embedded.Server {
	return embeddedtest.StartSecure(t, dir, model())
}

func shutdown(t *testing.T, srv *embedded.Server) { embeddedtest.Shutdown(t, srv) }

// connect connects as the client role when name starts with "client", as
// the operator when it starts with "operator", else as the users service
// (a replica).
func connect(t *testing.T, srv *embedded.Server, name string) *nats.Conn {
	user := users.Access().User
	for _, role := range []string{natsauth.ClientUser, natsauth.OperatorUser, otherCaller.User} {
		if strings.HasPrefix(name, role) {
			user = role
		}
	}
	g, _ := model().Grant(user)
	return embeddedtest.ConnectAs(t, srv, g, t.Name()+"/"+name)
}

// startUsers starts a users service on nc, stopped when the test ends.
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

func newClient(t *testing.T, nc *nats.Conn) *messaging.Client {
	t.Helper()
	c, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

// The typed calls. The must* forms fail the test on error.

func create(ctx context.Context, c *messaging.Client, name, email string, years int, opts ...wire.CallOption) (contract.User, error) {
	return contract.CreateUser(ctx, c, contract.CreateRequest{Name: name, Email: email, Age: ptr(years)}, opts...)
}

func get(ctx context.Context, c *messaging.Client, id string) (contract.User, error) {
	return contract.GetUser(ctx, c, contract.GetRequest{ID: id})
}

func update(ctx context.Context, c *messaging.Client, req contract.UpdateRequest) (contract.User, error) {
	return contract.UpdateUser(ctx, c, req)
}

func remove(ctx context.Context, c *messaging.Client, id string, version int64) (contract.DeleteResponse, error) {
	return contract.DeleteUser(ctx, c, contract.DeleteRequest{ID: id, Version: version})
}

func list(ctx context.Context, c *messaging.Client, req contract.ListRequest) (contract.ListResponse, error) {
	return contract.ListUsers(ctx, c, req)
}

func mustCreate(t *testing.T, c *messaging.Client, name, email string, years int) contract.User {
	t.Helper()
	u, err := create(t.Context(), c, name, email, years)
	if err != nil {
		t.Fatalf("create %s <%s>: %v", name, email, err)
	}
	return u
}

func mustGet(t *testing.T, c *messaging.Client, id string) contract.User {
	t.Helper()
	u, err := get(t.Context(), c, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return u
}

func mustUpdate(t *testing.T, c *messaging.Client, req contract.UpdateRequest) contract.User {
	t.Helper()
	u, err := update(t.Context(), c, req)
	if err != nil {
		t.Fatalf("update %s: %v", req.ID, err)
	}
	return u
}

func mustDelete(t *testing.T, c *messaging.Client, id string, version int64) {
	t.Helper()
	resp, err := remove(t.Context(), c, id, version)
	if err != nil {
		t.Fatalf("delete %s: %v", id, err)
	}
	if resp != (contract.DeleteResponse{ID: id, Deleted: true}) {
		t.Fatalf("delete %s = %+v, want {ID:%s Deleted:true}", id, resp, id)
	}
}

// listAll pages through users.list with the given page size and returns
// every user in the order received.
func listAll(t *testing.T, c *messaging.Client, limit int) []contract.User {
	t.Helper()
	var all []contract.User
	after := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("list: more than 1000 pages; the cursor does not advance")
		}
		resp, err := list(t.Context(), c, contract.ListRequest{Limit: limitOf(limit), After: after})
		if err != nil {
			t.Fatalf("list after %q: %v", after, err)
		}
		all = append(all, resp.Users...)
		if resp.Next == "" {
			return all
		}
		after = resp.Next
	}
}

func ids(us []contract.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
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

// emailN is a distinct email for the i-th user of a test.
func emailN(i int) string { return "user-" + strconv.Itoa(i) + "@example.com" }

// limitOf is a list limit: nil (the default) for 0.
func limitOf(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
