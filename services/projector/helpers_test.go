package projector_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/pgtest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/orders"
	orderscontract "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/projector/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// env is one test's world: an embedded NATS server with the real users and
// orders services, a PostgreSQL server, and a client.
type env struct {
	srv    *embedded.Server
	pg     *pgtest.Server
	pgURL  string
	nc     *nats.Conn
	js     jetstream.JetStream
	client *messaging.Client
	pool   *pgxpool.Pool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pg := pgtest.Start(t)
	srv := embeddedtest.StartSecure(t, t.TempDir(), model())
	us, err := users.Start(t.Context(), connectAs(t, srv, users.Access().User), users.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = us.Stop(context.Background()) })
	os, err := orders.Start(t.Context(), connectAs(t, srv, orders.Access().User), orders.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Stop(context.Background()) })
	nc := connectAs(t, srv, natsauth.ClientUser)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	client, err := messaging.NewClient(nc, messaging.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, pg: pg, pgURL: pg.URL(""), nc: nc, js: js, client: client}
	pool, err := pgxpool.New(context.Background(), e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	return e
}

// model is what the tests run under: the services' own NATS permissions,
// and the client role's for callers (docs/security.md).
func model() natsauth.Model {
	return natsauth.NewModel(users.Access(), orders.Access(), projector.Access())
}

// connectAs connects as user of model.
func connectAs(t *testing.T, srv *embedded.Server, user string) *nats.Conn {
	g, _ := model().Grant(user)
	return embeddedtest.ConnectAs(t, srv, g, t.Name()+"/"+user)
}

// startProjector starts a projector on its own connection, stopped when the
// test ends.
func (e *env) startProjector(t *testing.T, name string, opts projector.Options) *projector.Service {
	t.Helper()
	opts.PostgresURL = e.pgURL
	if opts.RetryMax == 0 {
		opts.RetryMax = 500 * time.Millisecond
	}
	p, err := projector.Start(t.Context(), embeddedtest.ConnectAs(t, e.srv, projector.Access(), t.Name()+"/"+name), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return p
}

func (e *env) createUser(t testing.TB, name, email string, age int) userscontract.User {
	t.Helper()
	u, err := userscontract.CreateUser(context.Background(), e.client, userscontract.CreateRequest{Name: name, Email: email, Age: &age})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

func (e *env) placeOrder(t testing.TB, userID string, skus ...string) orderscontract.Order {
	t.Helper()
	var items []orderscontract.Item
	for i, s := range skus {
		items = append(items, orderscontract.Item{SKU: s, Quantity: i + 1, UnitPriceCents: int64(100 * (i + 1))})
	}
	o, err := orderscontract.CreateOrder(context.Background(), e.client, orderscontract.CreateRequest{UserID: userID, Items: items, Currency: "EUR"})
	if err != nil {
		t.Fatalf("place order: %v", err)
	}
	return o
}

// lastSeq is the sequence of the last event on the subjects filter matches
// (0 when none): what a write's Switchboard-Sequence says.
func (e *env) lastSeq(t testing.TB, stream, filter string) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

func (e *env) position(t testing.TB, stream string) uint64 {
	t.Helper()
	var seq int64
	err := e.pool.QueryRow(context.Background(), `SELECT last_seq FROM projector.positions WHERE stream = $1`, stream).Scan(&seq)
	if err != nil {
		return 0
	}
	return uint64(seq)
}

// waitCaughtUp waits until both projections have applied the last event
// of their streams.
func (e *env) waitCaughtUp(t testing.TB, within time.Duration) {
	t.Helper()
	testkit.Eventually(t, within, 20*time.Millisecond, func() error {
		for _, s := range []struct{ stream, filter string }{
			{userscontract.Stream, userscontract.EventSubjects},
			{orderscontract.Stream, orderscontract.EventSubjects},
		} {
			want := e.lastSeq(t, s.stream, s.filter)
			if got := e.position(t, s.stream); got < want {
				return fmt.Errorf("%s applied up to %d of %d", s.stream, got, want)
			}
		}
		return nil
	})
}

// state is the content of the query tables, or what it should be.
type state struct {
	Users  []userRow
	Orders []orderRow
}

type userRow struct {
	ID, Name, Email      string
	Age                  int
	Version              int64
	CreatedAt, UpdatedAt time.Time
	Deleted              bool
}

type orderRow struct {
	ID, UserID, Currency, Status, CancelReason string
	TotalCents, Version                        int64
	CreatedAt, UpdatedAt                       time.Time
	Items                                      []orderscontract.Item
}

// checksum is a digest of s, for comparing states at a glance.
func (s state) checksum() string {
	data, _ := json.Marshal(s)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// replayState folds every event of the streams, as a fresh consumer reads
// them, into the state the tables must hold: last event per entity wins.
func (e *env) replayState(t testing.TB) state {
	t.Helper()
	st := state{Users: []userRow{}, Orders: []orderRow{}}
	userByID := map[string]userRow{}
	e.replay(t, userscontract.Stream, userscontract.EventSubjects, func(data []byte) {
		var ev userscontract.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return // dead-lettered by the projector too
		}
		u := ev.User
		userByID[u.ID] = userRow{ID: u.ID, Name: u.Name, Email: u.Email, Age: u.Age, Version: u.Version,
			CreatedAt: us(u.CreatedAt), UpdatedAt: us(u.UpdatedAt), Deleted: ev.Type == userscontract.EventDeleted}
	})
	orderByID := map[string]orderRow{}
	e.replay(t, orderscontract.Stream, orderscontract.EventSubjects, func(data []byte) {
		var ev orderscontract.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
		o := ev.Order
		orderByID[o.ID] = orderRow{ID: o.ID, UserID: o.UserID, Currency: o.Currency, Status: o.Status, CancelReason: o.CancelReason,
			TotalCents: o.TotalCents, Version: o.Version, CreatedAt: us(o.CreatedAt), UpdatedAt: us(o.UpdatedAt), Items: o.Items}
	})
	for _, u := range userByID {
		st.Users = append(st.Users, u)
	}
	for _, o := range orderByID {
		st.Orders = append(st.Orders, o)
	}
	slices.SortFunc(st.Users, func(a, b userRow) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Orders, func(a, b orderRow) int { return cmp.Compare(a.ID, b.ID) })
	return st
}

// us is t as PostgreSQL keeps it: to the microsecond, in UTC.
func us(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func (e *env) replay(t testing.TB, stream, filter string, f func([]byte)) {
	t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		pending := uint64(1)
		for msg := range batch.Messages() {
			n++
			f(msg.Data())
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
		}
		if n == 0 || pending == 0 {
			return
		}
	}
}

// tableState reads the tables.
func (e *env) tableState(t testing.TB) state {
	t.Helper()
	ctx := context.Background()
	var st state
	rows, err := e.pool.Query(ctx, `SELECT id, name, email, age, version, created_at, updated_at, deleted_at IS NOT NULL FROM projector.users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	st.Users, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (userRow, error) {
		var u userRow
		err := r.Scan(&u.ID, &u.Name, &u.Email, &u.Age, &u.Version, &u.CreatedAt, &u.UpdatedAt, &u.Deleted)
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		return u, err
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err = e.pool.Query(ctx, `SELECT id, user_id, currency, status, cancel_reason, total_cents, version, created_at, updated_at,
		(SELECT coalesce(json_agg(json_build_object('sku', sku, 'quantity', quantity, 'unit_price_cents', unit_price_cents) ORDER BY line), '[]')
		 FROM projector.order_items WHERE order_id = o.id)
		FROM projector.orders o ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	st.Orders, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (orderRow, error) {
		var o orderRow
		var items []byte
		err := r.Scan(&o.ID, &o.UserID, &o.Currency, &o.Status, &o.CancelReason, &o.TotalCents, &o.Version, &o.CreatedAt, &o.UpdatedAt, &items)
		o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
		if err == nil {
			err = json.Unmarshal(items, &o.Items)
		}
		return o, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkTablesMatchStreams fails the test unless the tables hold exactly
// what a replay of the streams gives.
func (e *env) checkTablesMatchStreams(t testing.TB) state {
	t.Helper()
	want := e.replayState(t)
	got := e.tableState(t)
	if len(got.Users) != len(want.Users) || len(got.Orders) != len(want.Orders) {
		t.Fatalf("tables hold %d users and %d orders; the streams %d and %d", len(got.Users), len(got.Orders), len(want.Users), len(want.Orders))
	}
	if got.checksum() != want.checksum() {
		for i := range want.Users {
			if got.Users[i] != want.Users[i] {
				t.Errorf("user row %+v\nwant     %+v", got.Users[i], want.Users[i])
				break
			}
		}
		for i := range want.Orders {
			if fmt.Sprint(got.Orders[i]) != fmt.Sprint(want.Orders[i]) {
				t.Errorf("order row %+v\nwant      %+v", got.Orders[i], want.Orders[i])
				break
			}
		}
		t.Fatalf("table checksum %s, stream replay %s", got.checksum(), want.checksum())
	}
	return got
}

func status(t testing.TB, e *env) contract.StatusResponse {
	t.Helper()
	st, err := contract.Status(context.Background(), e.client)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
