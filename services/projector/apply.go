package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/devloop/switchboard/messaging"
	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
)

// Schema is the PostgreSQL schema of the projector's tables.
const Schema = "projector"

// projectionSpec describes one projection: the stream it follows, the
// tables it writes, and how one event becomes statements.
type projectionSpec struct {
	name    string // "users", "orders"
	stream  string
	durable string
	filter  string
	tables  []string // in the order they are created
	// queue appends the statements of one event to b, written against
	// schema, and returns how to read whether the event changed a row.
	// An event it cannot apply is a permanent error.
	queue func(b *pgx.Batch, schema string, d *messaging.Delivery) (func(pgx.BatchResults) (bool, error), error)
}

// Durable consumer names, one per projection.
const (
	UsersConsumer  = "projector-users"
	OrdersConsumer = "projector-orders"
)

func specs() []projectionSpec {
	return []projectionSpec{
		{
			name: "users", stream: users.Stream, durable: UsersConsumer, filter: users.EventSubjects,
			tables: []string{"users"},
			queue:  queueUserEvent,
		},
		{
			name: "orders", stream: orders.Stream, durable: OrdersConsumer, filter: orders.EventSubjects,
			tables: []string{"orders", "order_items"},
			queue:  queueOrderEvent,
		},
	}
}

func specByName(name string) (projectionSpec, bool) {
	for _, s := range specs() {
		if s.name == name {
			return s, true
		}
	}
	return projectionSpec{}, false
}

// inSchema writes sql, whose tables are spelled "projector.x", against
// schema instead.
func inSchema(sql, schema string) string {
	if schema == Schema {
		return sql
	}
	return strings.ReplaceAll(sql, Schema+".", schema+".")
}

// The version guard makes every write idempotent and order-proof: a row
// only ever moves to a newer version of its entity, so a redelivered,
// replayed or late event changes nothing.
const upsertUser = `
INSERT INTO projector.users AS u (id, name, email, age, version, created_at, updated_at, deleted_at, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE SET
	name = EXCLUDED.name, email = EXCLUDED.email, age = EXCLUDED.age, version = EXCLUDED.version,
	created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, seq = EXCLUDED.seq
WHERE u.version < EXCLUDED.version`

func queueUserEvent(b *pgx.Batch, schema string, d *messaging.Delivery) (func(pgx.BatchResults) (bool, error), error) {
	var ev users.Event
	if err := json.Unmarshal(d.Payload, &ev); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("decode user event at %s:%d: %w", d.Stream, d.StreamSeq, err))
	}
	u := ev.User
	if d.Subject != users.EventSubjectPrefix+u.ID || !users.ValidID(u.ID) || u.Version < 1 {
		return nil, messaging.Permanent(fmt.Errorf("user event at %s:%d: user id %q, version %d on subject %s", d.Stream, d.StreamSeq, u.ID, u.Version, d.Subject))
	}
	var deletedAt any
	switch ev.Type {
	case users.EventCreated, users.EventUpdated:
	case users.EventDeleted:
		deletedAt = ev.OccurredAt
	default:
		return nil, messaging.Permanent(fmt.Errorf("user event at %s:%d: unknown type %q", d.Stream, d.StreamSeq, ev.Type))
	}
	b.Queue(inSchema(upsertUser, schema), u.ID, u.Name, u.Email, u.Age, u.Version, u.CreatedAt, u.UpdatedAt, deletedAt, int64(d.StreamSeq))
	return func(br pgx.BatchResults) (bool, error) {
		tag, err := br.Exec()
		return tag.RowsAffected() == 1, err
	}, nil
}

// upsertOrder writes the order and, when it moved to this version, its
// items, in one statement: its result says whether the order changed.
const upsertOrder = `
WITH o AS (
	INSERT INTO projector.orders AS o (id, user_id, currency, total_cents, status, cancel_reason, version, created_at, updated_at, seq)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (id) DO UPDATE SET
		user_id = EXCLUDED.user_id, currency = EXCLUDED.currency, total_cents = EXCLUDED.total_cents,
		status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason, version = EXCLUDED.version,
		created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, seq = EXCLUDED.seq
	WHERE o.version < EXCLUDED.version
	RETURNING id
), gone AS (
	DELETE FROM projector.order_items WHERE order_id IN (SELECT id FROM o) AND line >= cardinality($11::text[])
), items AS (
	INSERT INTO projector.order_items (order_id, line, sku, quantity, unit_price_cents)
	SELECT o.id, i.n - 1, i.sku, i.quantity, i.price
	FROM o, unnest($11::text[], $12::integer[], $13::bigint[]) WITH ORDINALITY AS i(sku, quantity, price, n)
	ON CONFLICT (order_id, line) DO UPDATE SET
		sku = EXCLUDED.sku, quantity = EXCLUDED.quantity, unit_price_cents = EXCLUDED.unit_price_cents
)
SELECT count(*) FROM o`

func queueOrderEvent(b *pgx.Batch, schema string, d *messaging.Delivery) (func(pgx.BatchResults) (bool, error), error) {
	var ev orders.Event
	if err := json.Unmarshal(d.Payload, &ev); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("decode order event at %s:%d: %w", d.Stream, d.StreamSeq, err))
	}
	o := ev.Order
	if ev.Type != orders.EventPlaced && ev.Type != orders.EventCancelled {
		return nil, messaging.Permanent(fmt.Errorf("order event at %s:%d: unknown type %q", d.Stream, d.StreamSeq, ev.Type))
	}
	if !users.ValidID(o.ID) || d.Subject != orders.EventSubject(o.ID, ev.Type) || o.Version < 1 ||
		o.Status != orders.StatusPlaced && o.Status != orders.StatusCancelled {
		return nil, messaging.Permanent(fmt.Errorf("order event at %s:%d: order id %q, version %d, status %q on subject %s",
			d.Stream, d.StreamSeq, o.ID, o.Version, o.Status, d.Subject))
	}
	skus := make([]string, len(o.Items))
	qty := make([]int32, len(o.Items))
	price := make([]int64, len(o.Items))
	for i, it := range o.Items {
		skus[i], qty[i], price[i] = it.SKU, int32(it.Quantity), it.UnitPriceCents
	}
	b.Queue(inSchema(upsertOrder, schema), o.ID, o.UserID, o.Currency, o.TotalCents, o.Status, o.CancelReason, o.Version,
		o.CreatedAt, o.UpdatedAt, int64(d.StreamSeq), skus, qty, price)
	return func(br pgx.BatchResults) (bool, error) {
		var n int
		err := br.QueryRow().Scan(&n)
		return n == 1, err
	}, nil
}

// batchResult counts what a batch did.
type batchResult struct {
	applied, unchanged int
	lastSeq            uint64
}

// applyBatch writes ds (in stream order) into schema's tables within tx,
// with one round trip. When position is true it also locks and advances
// the stream's position, in the same transaction.
func applyBatch(ctx context.Context, tx pgx.Tx, spec projectionSpec, schema string, ds []*messaging.Delivery, position bool) (batchResult, error) {
	var res batchResult
	b := &pgx.Batch{}
	if position {
		// First, so that a rebuild's switch-over (which locks this row)
		// and this batch never interleave.
		b.Queue(`SELECT last_seq FROM projector.positions WHERE stream = $1 FOR UPDATE`, spec.stream)
	}
	reads := make([]func(pgx.BatchResults) (bool, error), 0, len(ds))
	for _, d := range ds {
		read, err := spec.queue(b, schema, d)
		if err != nil {
			return res, err
		}
		reads = append(reads, read)
		res.lastSeq = max(res.lastSeq, d.StreamSeq)
	}
	if position {
		b.Queue(`UPDATE projector.positions SET last_seq = GREATEST(last_seq, $2), applied_at = now() WHERE stream = $1`, spec.stream, int64(res.lastSeq))
	}
	br := tx.SendBatch(ctx, b)
	if position {
		var last int64
		if err := br.QueryRow().Scan(&last); err != nil {
			_ = br.Close()
			return res, classify(fmt.Errorf("lock the %s position: %w", spec.stream, err))
		}
	}
	for i, read := range reads {
		changed, err := read(br)
		if err != nil {
			_ = br.Close()
			return res, classify(fmt.Errorf("apply %s:%d: %w", spec.stream, ds[i].StreamSeq, err))
		}
		if changed {
			res.applied++
		} else {
			res.unchanged++
		}
	}
	if err := br.Close(); err != nil {
		return res, classify(fmt.Errorf("apply %s batch: %w", spec.stream, err))
	}
	return res, nil
}

// classify marks errors that are about the data, not the database being
// reachable, as permanent: a data exception (class 22) or an integrity
// constraint violation (class 23) fails again however often it is tried.
// Everything else (connection loss, a restart, a lock timeout) is worth
// retrying.
func classify(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23")) {
		return messaging.Permanent(err)
	}
	return err
}
