package projector_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	orderscontract "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/projector/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// crud creates, updates and deletes users and places and cancels orders
// through NATS, and returns the users left.
func crud(t *testing.T, e *env, n int) []userscontract.User {
	t.Helper()
	ctx := context.Background()
	var kept []userscontract.User
	for i := range n {
		u := e.createUser(t, fmt.Sprintf("User %03d", i), fmt.Sprintf("user%03d@example.com", i), 20+i%50)
		o := e.placeOrder(t, u.ID, "book-1", "pen-2")
		switch i % 4 {
		case 0:
			name := fmt.Sprintf("Renamed %03d", i)
			if _, err := userscontract.UpdateUser(ctx, e.client, userscontract.UpdateRequest{ID: u.ID, Version: 1, Name: &name}); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := orderscontract.CancelOrder(ctx, e.client, orderscontract.CancelRequest{ID: o.ID, Version: 1, Reason: "changed my mind"}); err != nil {
				t.Fatal(err)
			}
		case 2:
			// orders cancels a deleted user's open orders.
			if _, err := userscontract.DeleteUser(ctx, e.client, userscontract.DeleteRequest{ID: u.ID}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kept = append(kept, u)
	}
	return kept
}

func TestTablesMatchStreamsAfterCRUD(t *testing.T) {
	e := newEnv(t)
	p := e.startProjector(t, "projector", projector.Options{BatchSize: 16})
	crud(t, e, 40)
	e.waitCaughtUp(t, 20*time.Second)
	// orders cancels the deleted users' orders through its consumer.
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		var open int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM projector.orders o JOIN projector.users u ON u.id = o.user_id
			WHERE u.deleted_at IS NOT NULL AND o.status = 'placed'`).Scan(&open)
		if err != nil || open > 0 {
			return fmt.Errorf("%d open orders of deleted users (%v)", open, err)
		}
		e.waitCaughtUp(t, 10*time.Second)
		return nil
	})
	got := e.checkTablesMatchStreams(t)
	if len(got.Users) != 40 || len(got.Orders) != 40 {
		t.Fatalf("%d users, %d orders", len(got.Users), len(got.Orders))
	}
	st := p.Status(t.Context())
	for name, ps := range st.Projections {
		if ps.Role != contract.RoleLeader || ps.Unchanged != 0 || ps.Pending != 0 || !ps.PostgresOK {
			t.Errorf("%s: %+v", name, ps)
		}
	}
	// The consumer health shows the projector's consumers.
	stats, err := wire.Call[struct{}, map[string]messaging.ConsumerStats](t.Context(), e.client, "projector.consumers", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if s := stats[projector.UsersConsumer]; s.Handled == 0 || s.Pending != 0 || s.Stream != userscontract.Stream {
		t.Errorf("consumer stats %+v", stats)
	}
}

// An event that cannot be applied is dead-lettered, alone; the events
// around it are applied and the position moves past it.
func TestPoisonEventIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.startProjector(t, "projector", projector.Options{})
	a := e.createUser(t, "Ada", "ada@example.com", 36)
	// Not a user event: a payload of the wrong shape on a user's subject.
	bogus := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	msg := &nats.Msg{Subject: userscontract.EventSubjectPrefix + bogus, Data: []byte(`{"type":"user.created","user":{"id":"` + bogus + `","age":"old"}}`)}
	// Only the users identity may write USERS: the poison is its.
	js, err := jetstream.New(connectAs(t, e.srv, users.Access().User))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	b := e.createUser(t, "Grace", "grace@example.com", 85)
	e.waitCaughtUp(t, 10*time.Second)
	dls := messaging.NewDeadLetters(e.js, "")
	var page []messaging.DeadLetter
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		var err error
		page, _, err = dls.List(t.Context(), messaging.DeadLetterQuery{Stream: userscontract.Stream, Consumer: projector.UsersConsumer}, 0, 10)
		if err != nil || len(page) != 1 {
			return fmt.Errorf("%d dead letters (%v)", len(page), err)
		}
		return nil
	})
	if page[0].Subject != msg.Subject || page[0].Reason != messaging.ReasonPermanent {
		t.Errorf("dead letter %+v", page[0])
	}
	res, err := contract.SearchUsers(t.Context(), e.client, contract.UsersSearchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Users) != 2 || res.Users[0].ID != a.ID || res.Users[1].ID != b.ID {
		t.Fatalf("users %+v", res.Users)
	}
}

func TestSearchUsers(t *testing.T) {
	e := newEnv(t)
	e.startProjector(t, "projector", projector.Options{})
	var ids []string
	for i, name := range []string{"Ada Lovelace", "ada byron", "Grace Hopper", "Adam Smith", "100%_real"} {
		ids = append(ids, e.createUser(t, name, "p"+strconv.Itoa(i)+"@Example.com", 30).ID)
	}
	gone := e.createUser(t, "Ada Gone", "gone@example.com", 30)
	if _, err := userscontract.DeleteUser(t.Context(), e.client, userscontract.DeleteRequest{ID: gone.ID}); err != nil {
		t.Fatal(err)
	}
	seq := e.lastSeq(t, userscontract.Stream, userscontract.EventSubjects)
	names := func(us []userscontract.User) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Name)
		}
		return out
	}
	tests := []struct {
		name      string
		given     contract.UsersSearchRequest
		wantNames []string
		wantNext  bool
	}{
		{"name prefix, any case", contract.UsersSearchRequest{NamePrefix: "ADA"}, []string{"Ada Lovelace", "ada byron", "Adam Smith"}, false},
		{"email prefix", contract.UsersSearchRequest{EmailPrefix: "P2@"}, []string{"Grace Hopper"}, false},
		{"both", contract.UsersSearchRequest{NamePrefix: "ad", EmailPrefix: "p3"}, []string{"Adam Smith"}, false},
		{"wildcards are literal", contract.UsersSearchRequest{NamePrefix: "100%_"}, []string{"100%_real"}, false},
		{"% matches only itself", contract.UsersSearchRequest{NamePrefix: "%"}, nil, false},
		{"first page", contract.UsersSearchRequest{Limit: 2}, []string{"Ada Lovelace", "ada byron"}, true},
		{"next page", contract.UsersSearchRequest{Limit: 2, After: ids[1]}, []string{"Grace Hopper", "Adam Smith"}, true},
		{"last page", contract.UsersSearchRequest{Limit: 2, After: ids[3]}, []string{"100%_real"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.given.MinSequence = seq
			res, err := contract.SearchUsers(t.Context(), e.client, tt.given)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(names(res.Users)) != fmt.Sprint(tt.wantNames) || (res.Next != "") != tt.wantNext || res.Sequence < seq {
				t.Fatalf("got %q next %q sequence %d", names(res.Users), res.Next, res.Sequence)
			}
		})
	}
	for _, bad := range []contract.UsersSearchRequest{{Limit: 101}, {After: "nope"}, {NamePrefix: string(make([]byte, 101))}} {
		if _, err := contract.SearchUsers(t.Context(), e.client, bad); !errors.Is(err, wire.ErrBadRequest) {
			t.Errorf("SearchUsers(%+v) = %v, want a 400", bad, err)
		}
	}
}

func TestSearchOrders(t *testing.T) {
	e := newEnv(t)
	e.startProjector(t, "projector", projector.Options{})
	ada := e.createUser(t, "Ada", "ada@example.com", 36)
	bob := e.createUser(t, "Bob", "bob@example.com", 40)
	var adas []orderscontract.Order
	for i := range 5 {
		adas = append(adas, e.placeOrder(t, ada.ID, "sku-"+strconv.Itoa(i)))
	}
	e.placeOrder(t, bob.ID, "x", "y", "z")
	if _, err := orderscontract.CancelOrder(t.Context(), e.client, orderscontract.CancelRequest{ID: adas[1].ID, Version: 1, Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	seq := e.lastSeq(t, orderscontract.Stream, orderscontract.EventSubjects)
	ids := func(os []orderscontract.Order) []string {
		var out []string
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out
	}
	search := func(t *testing.T, req contract.OrdersSearchRequest) contract.OrdersSearchResponse {
		t.Helper()
		req.MinSequence = seq
		res, err := contract.SearchOrders(t.Context(), e.client, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	t.Run("a user's orders, newest first, with items", func(t *testing.T) {
		res := search(t, contract.OrdersSearchRequest{UserID: ada.ID})
		want := []string{adas[4].ID, adas[3].ID, adas[2].ID, adas[1].ID, adas[0].ID}
		if fmt.Sprint(ids(res.Orders)) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", ids(res.Orders), want)
		}
		if o := res.Orders[4]; len(o.Items) != 1 || o.Items[0].SKU != "sku-0" || o.TotalCents != 100 || o.Currency != "EUR" {
			t.Errorf("order %+v", o)
		}
		if res.Orders[3].Status != orderscontract.StatusCancelled || res.Orders[3].CancelReason != "no" || res.Orders[3].Version != 2 {
			t.Errorf("cancelled order %+v", res.Orders[3])
		}
	})
	t.Run("by status, oldest first", func(t *testing.T) {
		res := search(t, contract.OrdersSearchRequest{Status: orderscontract.StatusCancelled, Sort: contract.SortCreatedAsc})
		if len(res.Orders) != 1 || res.Orders[0].ID != adas[1].ID {
			t.Fatalf("got %v", ids(res.Orders))
		}
	})
	t.Run("keyset pages cover everything once", func(t *testing.T) {
		for _, sort := range []string{contract.SortCreatedAsc, contract.SortCreatedDesc} {
			var all []string
			req := contract.OrdersSearchRequest{Limit: 2, Sort: sort}
			for range 10 {
				res := search(t, req)
				all = append(all, ids(res.Orders)...)
				if res.Next == "" {
					break
				}
				req.After = res.Next
			}
			if len(all) != 6 {
				t.Fatalf("%s: pages held %d orders, want 6: %v", sort, len(all), all)
			}
		}
	})
	t.Run("created range", func(t *testing.T) {
		res := search(t, contract.OrdersSearchRequest{UserID: ada.ID, Sort: contract.SortCreatedAsc})
		from, before := res.Orders[1].CreatedAt, res.Orders[3].CreatedAt
		got := search(t, contract.OrdersSearchRequest{UserID: ada.ID, Sort: contract.SortCreatedAsc, CreatedFrom: &from, CreatedBefore: &before})
		if fmt.Sprint(ids(got.Orders)) != fmt.Sprint([]string{adas[1].ID, adas[2].ID}) {
			t.Fatalf("got %v", ids(got.Orders))
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		now := time.Now()
		for _, bad := range []contract.OrdersSearchRequest{
			{Status: "lost"}, {Sort: "total"}, {After: "x"}, {UserID: "u1"}, {Limit: -1},
			{CreatedFrom: &now, CreatedBefore: &now},
			{MinSequence: seq + 1000},
		} {
			if _, err := contract.SearchOrders(t.Context(), e.client, bad); !errors.Is(err, wire.ErrBadRequest) {
				t.Errorf("SearchOrders(%+v) = %v, want a 400", bad, err)
			}
		}
	})
}

// A query given the sequence of a write sees that write, however far the
// projection lags; when the projection cannot catch up in time, the query
// answers 504 saying so.
func TestSearchWaitsForMinSequence(t *testing.T) {
	e := newEnv(t)
	// Another session holds the orders projection's lead: nobody applies.
	conn, err := e.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, projector.LockOrders); err != nil {
		t.Fatal(err)
	}
	p := e.startProjector(t, "projector", projector.Options{})
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if r := p.Status(t.Context()).Projections["orders"].Role; r != contract.RoleStandby {
			return fmt.Errorf("orders role %q", r)
		}
		return nil
	})
	ada := e.createUser(t, "Ada", "ada@example.com", 36)
	order := e.placeOrder(t, ada.ID, "book")
	seq := e.lastSeq(t, orderscontract.Stream, orderscontract.OrderSubjects(order.ID))

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = contract.SearchOrders(ctx, e.client, contract.OrdersSearchRequest{UserID: ada.ID, MinSequence: seq})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeDeadlineExceeded || !strings.Contains(we.Message, "not yet "+strconv.FormatUint(seq, 10)) {
		t.Fatalf("search while the projection lags = %v, want a 504 saying what it waits for", err)
	}
	// Without min_sequence it answers at once, from what is applied.
	res, err := contract.SearchOrders(t.Context(), e.client, contract.OrdersSearchRequest{UserID: ada.ID})
	if err != nil || len(res.Orders) != 0 || res.Sequence >= seq {
		t.Fatalf("search without min_sequence = %+v, %v", res, err)
	}

	// A query that waits sees the order once the projection catches up.
	done := make(chan error, 1)
	go func() {
		res, err := contract.SearchOrders(t.Context(), e.client, contract.OrdersSearchRequest{UserID: ada.ID, MinSequence: seq})
		if err == nil && (len(res.Orders) != 1 || res.Orders[0].ID != order.ID || res.Sequence < seq) {
			err = fmt.Errorf("got %+v", res)
		}
		done <- err
	}()
	// Ending the session frees the lock.
	_ = conn.Hijack().Close(context.Background())
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting query did not return")
	}
}
