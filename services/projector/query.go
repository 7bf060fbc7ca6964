package projector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	orders "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/projector/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// queries answers searches from the tables.
type queries struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
}

// unavailable is the error of a query the database could not answer.
func unavailable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return wire.NewError(wire.CodeUnavailable, "query store (PostgreSQL) unavailable; retry later").WithCause(err)
}

// maxWait bounds a min_sequence wait when the request has no deadline.
const maxWait = 5 * time.Second

// position returns the sequence up to which stream is applied.
func (q *queries) position(ctx context.Context, stream string) (uint64, error) {
	var seq int64
	err := q.pool.QueryRow(ctx, `SELECT last_seq FROM projector.positions WHERE stream = $1`, stream).Scan(&seq)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "42P01" {
		return 0, nil // not migrated yet: nothing applied
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("read the %s position: %w", stream, err))
	}
	return uint64(seq), nil
}

// waitFor waits until stream is applied up to min, and returns the
// position. It gives up a little before ctx's deadline, so the caller gets
// a clear 504 rather than a timeout of its own.
func (q *queries) waitFor(ctx context.Context, stream string, want uint64) (uint64, error) {
	seq, err := q.position(ctx, stream)
	if err != nil || seq >= want {
		return seq, err
	}
	// A sequence the stream does not have yet would be waited for in vain.
	if s, err := q.js.Stream(ctx, stream); err == nil {
		if last := s.CachedInfo().State.LastSeq; want > last {
			return seq, wire.NewError(wire.CodeBadRequest, "invalid request", wire.Detail{
				Field:   "min_sequence",
				Message: fmt.Sprintf("is beyond the last sequence of stream %s (%d): pass the sequence a write returned", stream, last),
			})
		}
	}
	giveUp := time.Now().Add(maxWait)
	if d, ok := ctx.Deadline(); ok {
		margin := min(time.Until(d)/10, 250*time.Millisecond)
		giveUp = d.Add(-margin)
	}
	interval := 5 * time.Millisecond
	for {
		if !time.Now().Add(interval).Before(giveUp) {
			return seq, wire.NewError(wire.CodeDeadlineExceeded, fmt.Sprintf(
				"the %s projection has applied sequence %d, not yet %d; retry, or query without min_sequence", stream, seq, want))
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return seq, ctx.Err()
		}
		if seq, err = q.position(ctx, stream); err != nil || seq >= want {
			return seq, err
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}

// likePrefix is a LIKE pattern matching strings that start with p,
// lower-cased.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(strings.ToLower(p)) + "%"
}

// read runs sql, after waiting for the stream's position to reach want
// (when given), together with the read of that position: one round trip
// when nothing needs waiting for. The position is read first, so the
// result reflects at least that much of the stream.
func (q *queries) read(ctx context.Context, stream string, want uint64, sql string, args []any, each func(pgx.Rows) error) (uint64, error) {
	if want > 0 {
		if _, err := q.waitFor(ctx, stream, want); err != nil {
			return 0, err
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT last_seq FROM projector.positions WHERE stream = $1`, stream)
	b.Queue(sql, args...)
	br := q.pool.SendBatch(ctx, b)
	defer br.Close()
	var seq int64
	if err := br.QueryRow().Scan(&seq); err != nil {
		return 0, unavailable(fmt.Errorf("read the %s position: %w", stream, err))
	}
	rows, err := br.Query()
	if err != nil {
		return 0, unavailable(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return 0, unavailable(err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, unavailable(err)
	}
	return uint64(seq), nil
}

func (q *queries) searchUsers(ctx context.Context, req contract.UsersSearchRequest) (contract.UsersSearchResponse, error) {
	limit := req.Limit
	if limit == 0 {
		limit = contract.DefaultLimit
	}
	var f filter
	f.where("deleted_at IS NULL")
	if req.NamePrefix != "" {
		f.where("lower(name) LIKE " + f.arg(likePrefix(req.NamePrefix)))
	}
	if req.EmailPrefix != "" {
		f.where("lower(email) LIKE " + f.arg(likePrefix(req.EmailPrefix)))
	}
	if req.After != "" {
		f.where("id > " + f.arg(req.After))
	}
	sql := `SELECT id, name, email, age, version, created_at, updated_at FROM projector.users WHERE ` +
		f.clause() + ` ORDER BY id LIMIT ` + f.arg(limit+1)
	list := []users.User{}
	seq, err := q.read(ctx, users.Stream, req.MinSequence, sql, f.args, func(r pgx.Rows) error {
		var u users.User
		err := r.Scan(&u.ID, &u.Name, &u.Email, &u.Age, &u.Version, &u.CreatedAt, &u.UpdatedAt)
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		list = append(list, u)
		return err
	})
	if err != nil {
		return contract.UsersSearchResponse{}, err
	}
	resp := contract.UsersSearchResponse{Users: list, Sequence: seq}
	if len(list) > limit {
		resp.Users = list[:limit]
		resp.Next = list[limit-1].ID
	}
	return resp, nil
}

func (q *queries) searchOrders(ctx context.Context, req contract.OrdersSearchRequest) (contract.OrdersSearchResponse, error) {
	limit := req.Limit
	if limit == 0 {
		limit = contract.DefaultLimit
	}
	var f filter
	if req.UserID != "" {
		f.where("user_id = " + f.arg(req.UserID))
	}
	if req.Status != "" {
		f.where("status = " + f.arg(req.Status))
	}
	if req.CreatedFrom != nil {
		f.where("created_at >= " + f.arg(*req.CreatedFrom))
	}
	if req.CreatedBefore != nil {
		f.where("created_at < " + f.arg(*req.CreatedBefore))
	}
	desc := req.Sort != contract.SortCreatedAsc
	if req.After != "" {
		at, id, _ := contract.ParseOrdersCursor(req.After) // validated
		op := ">"
		if desc {
			op = "<"
		}
		f.where(fmt.Sprintf("(created_at, id) %s (%s, %s)", op, f.arg(at), f.arg(id)))
	}
	order := "created_at, id"
	if desc {
		order = "created_at DESC, id DESC"
	}
	// The items come along as arrays, in the same statement.
	sql := `SELECT id, user_id, currency, total_cents, status, cancel_reason, version, created_at, updated_at,
			ARRAY(SELECT sku FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line),
			ARRAY(SELECT quantity FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line),
			ARRAY(SELECT unit_price_cents FROM projector.order_items i WHERE i.order_id = o.id ORDER BY line)
		FROM projector.orders o WHERE ` + f.clause() + ` ORDER BY ` + order + ` LIMIT ` + f.arg(limit+1)
	list := []orders.Order{}
	seq, err := q.read(ctx, orders.Stream, req.MinSequence, sql, f.args, func(r pgx.Rows) error {
		var o orders.Order
		var skus []string
		var qty []int32
		var price []int64
		err := r.Scan(&o.ID, &o.UserID, &o.Currency, &o.TotalCents, &o.Status, &o.CancelReason, &o.Version, &o.CreatedAt, &o.UpdatedAt,
			&skus, &qty, &price)
		o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
		o.Items = make([]orders.Item, 0, len(skus))
		for i := range skus {
			if i < len(qty) && i < len(price) {
				o.Items = append(o.Items, orders.Item{SKU: skus[i], Quantity: int(qty[i]), UnitPriceCents: price[i]})
			}
		}
		list = append(list, o)
		return err
	})
	if err != nil {
		return contract.OrdersSearchResponse{}, err
	}
	resp := contract.OrdersSearchResponse{Orders: list, Sequence: seq}
	if len(list) > limit {
		resp.Orders = list[:limit]
		last := resp.Orders[limit-1]
		resp.Next = contract.OrdersCursor(last.CreatedAt, last.ID)
	}
	return resp, nil
}

// filter builds the WHERE clause of a search: conditions joined by AND,
// with their values as numbered parameters ($1, $2, …), never in the SQL.
type filter struct {
	conds []string
	args  []any
}

// arg adds v as the next parameter and returns its placeholder.
func (f *filter) arg(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// where adds a condition.
func (f *filter) where(cond string) { f.conds = append(f.conds, cond) }

// clause is the conditions joined by AND; "true" when there are none.
func (f *filter) clause() string {
	if len(f.conds) == 0 {
		return "true"
	}
	return strings.Join(f.conds, " AND ")
}
