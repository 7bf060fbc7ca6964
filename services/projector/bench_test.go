package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/internal/pgtest"
	"github.com/devloop/switchboard/messaging"
	orderscontract "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/projector/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// BenchmarkProjection measures how many user events per second reach the
// tables ("projector", batches of 200 in one transaction each) against a
// raw messaging.Consume that only acks them ("raw-consume"), over the same
// stream of b.N user.created events. Run it with a fixed count:
//
//	go test ./services/projector -run '^$' -bench Projection -benchtime 20000x
func BenchmarkProjection(b *testing.B) {
	srv := embeddedtest.Start(b, b.TempDir())
	nc := embeddedtest.Connect(b, srv, "bench")
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	fill := func(b *testing.B) {
		b.Helper()
		_ = js.DeleteStream(context.Background(), userscontract.Stream)
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: userscontract.Stream, Subjects: []string{userscontract.EventSubjects}}); err != nil {
			b.Fatal(err)
		}
		now := time.Now().UTC()
		for i := range b.N {
			id := ulid.Make().String()
			data, _ := json.Marshal(userscontract.Event{Type: userscontract.EventCreated, ID: id, OccurredAt: now,
				User: userscontract.User{ID: id, Name: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("u%d@example.com", i), Age: 30, Version: 1, CreatedAt: now, UpdatedAt: now}})
			if _, err := js.PublishAsync(userscontract.EventSubjectPrefix+id, data); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
	}
	report := func(b *testing.B, elapsed time.Duration) {
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	}

	b.Run("raw-consume", func(b *testing.B) {
		fill(b)
		var n atomic.Int64
		done := make(chan struct{})
		b.ResetTimer()
		start := time.Now()
		c, err := messaging.Consume(context.Background(), js, messaging.ConsumerConfig{Stream: userscontract.Stream, Durable: "raw", Workers: 8},
			func(context.Context, messaging.Event[userscontract.Event]) error {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
		if err != nil {
			b.Fatal(err)
		}
		<-done
		elapsed := time.Since(start)
		b.StopTimer()
		_ = c.Stop(context.Background())
		report(b, elapsed)
	})

	b.Run("projector", func(b *testing.B) {
		fill(b)
		pg := pgtest.Start(b)
		pool, err := pgxpool.New(context.Background(), pg.URL(""))
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		if _, err := projector.Migrate(context.Background(), pool, nil); err != nil {
			b.Fatal(err)
		}
		s, err := js.Stream(context.Background(), userscontract.Stream)
		if err != nil {
			b.Fatal(err)
		}
		last := s.CachedInfo().State.LastSeq
		b.ResetTimer()
		start := time.Now()
		p, err := projector.Start(context.Background(), nc, projector.Options{PostgresURL: pg.URL("")})
		if err != nil {
			b.Fatal(err)
		}
		for {
			var seq int64
			if err := pool.QueryRow(context.Background(), `SELECT last_seq FROM projector.positions WHERE stream = 'USERS'`).Scan(&seq); err != nil {
				b.Fatal(err)
			}
			if uint64(seq) >= last {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		elapsed := time.Since(start)
		b.StopTimer()
		_ = p.Stop(context.Background())
		var rows int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projector.users`).Scan(&rows); err != nil || rows != b.N {
			b.Fatalf("%d rows for %d events (%v)", rows, b.N, err)
		}
		report(b, elapsed)
	})
}

// BenchmarkOrdersSearch measures orders.search over NATS with 100,000
// orders (of 1,000 users, 2 items each) in the table: one user's newest 20
// ("by-user"), and the newest 20 placed orders of everyone ("by-status"),
// against the same statement run directly with pgx ("sql-by-user", the
// items as arrays as the endpoint reads them), from 8 concurrent callers.
//
//	go test ./services/projector -run '^$' -bench OrdersSearch -benchtime 3000x
func BenchmarkOrdersSearch(b *testing.B) {
	const nOrders, nUsers = 100_000, 1_000
	srv := embeddedtest.Start(b, b.TempDir())
	nc := embeddedtest.Connect(b, srv, "bench")
	pg := pgtest.Start(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.URL(""))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := projector.Migrate(ctx, pool, nil); err != nil {
		b.Fatal(err)
	}
	userIDs := make([]string, nUsers)
	for i := range userIDs {
		userIDs[i] = ulid.Make().String()
	}
	base := time.Now().Add(-time.Duration(nOrders) * time.Second)
	var orderRows, itemRows [][]any
	for i := range nOrders {
		id := ulid.Make().String()
		at := base.Add(time.Duration(i) * time.Second)
		status := orderscontract.StatusPlaced
		if i%5 == 0 {
			status = orderscontract.StatusCancelled
		}
		orderRows = append(orderRows, []any{id, userIDs[i%nUsers], "EUR", int64(2500), status, "", int64(1), at, at, int64(i + 1)})
		itemRows = append(itemRows, []any{id, int32(0), "book", int32(1), int64(1500)}, []any{id, int32(1), "pen", int32(2), int64(500)})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"projector", "orders"},
		[]string{"id", "user_id", "currency", "total_cents", "status", "cancel_reason", "version", "created_at", "updated_at", "seq"},
		pgx.CopyFromRows(orderRows)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"projector", "order_items"},
		[]string{"order_id", "line", "sku", "quantity", "unit_price_cents"}, pgx.CopyFromRows(itemRows)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	p, err := projector.Start(ctx, embeddedtest.Connect(b, srv, "projector"), projector.Options{PostgresURL: pg.URL("")})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	client, err := messaging.NewClient(nc)
	if err != nil {
		b.Fatal(err)
	}
	check := func(n int) error {
		if n != 20 {
			return fmt.Errorf("%d orders, want 20", n)
		}
		return nil
	}
	b.Run("sql-by-user", func(b *testing.B) {
		benchload.Run(b, 8, func(ctx context.Context) error {
			rows, err := pool.Query(ctx, `SELECT id, user_id, currency, total_cents, status, cancel_reason, version, created_at, updated_at,
					ARRAY(SELECT sku FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line),
					ARRAY(SELECT quantity FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line),
					ARRAY(SELECT unit_price_cents FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line)
				FROM projector.orders o WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 21`, userIDs[rand.IntN(nUsers)])
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n != 21 {
				return fmt.Errorf("%d rows", n)
			}
			return rows.Err()
		}, benchload.SelfCPU)
	})
	b.Run("by-user", func(b *testing.B) {
		benchload.Run(b, 8, func(ctx context.Context) error {
			res, err := contract.SearchOrders(ctx, client, contract.OrdersSearchRequest{UserID: userIDs[rand.IntN(nUsers)], Limit: 20})
			if err == nil {
				err = check(len(res.Orders))
			}
			return err
		}, benchload.SelfCPU)
	})
	b.Run("by-status", func(b *testing.B) {
		benchload.Run(b, 8, func(ctx context.Context) error {
			res, err := contract.SearchOrders(ctx, client, contract.OrdersSearchRequest{Status: orderscontract.StatusPlaced, Limit: 20})
			if err == nil {
				err = check(len(res.Orders))
			}
			return err
		}, benchload.SelfCPU)
	})
}
