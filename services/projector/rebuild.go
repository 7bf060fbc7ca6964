package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
)

// Schemas a rebuild works in: the new tables are filled in rebuildSchema,
// and the old ones are moved to retiredSchema when the new ones take
// their place.
const (
	rebuildSchema = Schema + "_rebuild"
	retiredSchema = Schema + "_retired"
	lockRebuild   = int64(0x5357_5052_0000_0003)
)

// RebuildResult says what a rebuild of one projection did.
type RebuildResult struct {
	Projection string
	Stream     string
	// Events is how many events were replayed; Sequence the stream
	// sequence the new tables hold.
	Events   int
	Sequence uint64
	Took     time.Duration
}

// Projections names the projections Rebuild knows, in order.
func Projections() []string {
	var out []string
	for _, s := range specs() {
		out = append(out, s.name)
	}
	return out
}

// Rebuild replays the streams of the named projections ("users",
// "orders"; none for all) from their first message into fresh tables, and
// switches them over atomically: in one transaction, which holds the
// projection's position while it applies the last events, the old tables
// are moved out and the new ones take their place. Running projectors keep
// serving from the old tables until then and go on with the new ones
// after; queries wait for the switch at most a moment. Use it after a
// migration that needs the history (a new column, say) or to repair
// tables.
func Rebuild(ctx context.Context, js jetstream.JetStream, postgresURL string, names []string, logger *slog.Logger) ([]RebuildResult, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if postgresURL == "" {
		return nil, ErrNoPostgres
	}
	if len(names) == 0 {
		names = Projections()
	}
	var todo []projectionSpec
	for _, n := range names {
		spec, ok := specByName(n)
		if !ok {
			return nil, fmt.Errorf("rebuild: unknown projection %q; known: %s", n, strings.Join(Projections(), ", "))
		}
		todo = append(todo, spec)
	}
	pool, err := pgxpool.New(ctx, postgresURL)
	if err != nil {
		return nil, fmt.Errorf("rebuild: PostgreSQL URL does not parse")
	}
	defer pool.Close()
	if _, err := Migrate(ctx, pool, logger); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	defer conn.Release()
	// One rebuild at a time: they share the schemas.
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockRebuild).Scan(&got); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if !got {
		return nil, errors.New("rebuild: another rebuild is running")
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, lockRebuild) }()
	var out []RebuildResult
	for _, spec := range todo {
		res, err := rebuildOne(ctx, js, conn.Conn(), spec, logger.With(slog.String("projection", spec.name)))
		if err != nil {
			return out, fmt.Errorf("rebuild %s: %w", spec.name, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func rebuildOne(ctx context.Context, js jetstream.JetStream, conn *pgx.Conn, spec projectionSpec, logger *slog.Logger) (RebuildResult, error) {
	start := time.Now()
	res := RebuildResult{Projection: spec.name, Stream: spec.stream}
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+rebuildSchema+` CASCADE; CREATE SCHEMA `+rebuildSchema); err != nil {
		return res, err
	}
	defer func() { _, _ = conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+rebuildSchema+` CASCADE`) }()
	for _, table := range spec.tables {
		if err := copyTableShape(ctx, conn, table); err != nil {
			return res, err
		}
	}
	stream, err := js.Stream(ctx, spec.stream)
	if err != nil {
		return res, fmt.Errorf("stream %s: %w", spec.stream, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{spec.filter}})
	if err != nil {
		return res, fmt.Errorf("replay %s: %w", spec.stream, err)
	}
	r := &replay{cons: cons, conn: conn, spec: spec}

	// Replay what is there; the live projector goes on meanwhile.
	for {
		n, caughtUp, err := r.step(ctx, conn)
		if err != nil {
			return res, err
		}
		res.Events += n
		if caughtUp {
			break
		}
	}
	logger.Info("replayed; switching over", slog.Int("events", res.Events), slog.Uint64("sequence", r.seq))

	// Switch over: hold the position (live batches wait), apply what the
	// live tables have beyond the replay, move the tables.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var live int64
	if err := tx.QueryRow(ctx, `SELECT last_seq FROM projector.positions WHERE stream = $1 FOR UPDATE`, spec.stream).Scan(&live); err != nil {
		return res, fmt.Errorf("lock the %s position: %w", spec.stream, err)
	}
	for r.seq < uint64(live) {
		n, caughtUp, err := r.step(ctx, tx)
		if err != nil {
			return res, err
		}
		res.Events += n
		if caughtUp && r.seq < uint64(live) {
			return res, fmt.Errorf("the stream ends at %d, before the live position %d", r.seq, live)
		}
	}
	stmts := []string{`DROP SCHEMA IF EXISTS ` + retiredSchema + ` CASCADE`, `CREATE SCHEMA ` + retiredSchema}
	for _, table := range spec.tables {
		stmts = append(stmts,
			fmt.Sprintf(`ALTER TABLE %s.%s SET SCHEMA %s`, Schema, table, retiredSchema),
			fmt.Sprintf(`ALTER TABLE %s.%s SET SCHEMA %s`, rebuildSchema, table, Schema))
	}
	for _, stmt := range stmts {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return res, fmt.Errorf("switch over: %s: %w", stmt, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE projector.positions SET last_seq = GREATEST(last_seq, $2), applied_at = now() WHERE stream = $1`,
		spec.stream, int64(r.seq)); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("switch over: %w", err)
	}
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+retiredSchema+` CASCADE`); err != nil {
		logger.Warn("dropping the old tables failed", slog.String("schema", retiredSchema), slog.String("error", err.Error()))
	}
	res.Sequence = max(r.seq, uint64(live))
	res.Took = time.Since(start)
	logger.Info("rebuilt", slog.Int("events", res.Events), slog.Uint64("sequence", res.Sequence), slog.Duration("took", res.Took))
	return res, nil
}

// copyTableShape creates rebuildSchema.table like Schema.table: columns,
// defaults, checks, keys and indexes under their own names, so later
// migrations find what they expect.
func copyTableShape(ctx context.Context, conn *pgx.Conn, table string) error {
	live := Schema + "." + table
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s.%s (LIKE %s INCLUDING ALL EXCLUDING INDEXES)`, rebuildSchema, table, live)); err != nil {
		return fmt.Errorf("create %s.%s: %w", rebuildSchema, table, err)
	}
	rows, err := conn.Query(ctx, `
		SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
		WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'x') ORDER BY c.conname`, live)
	if err != nil {
		return err
	}
	cons, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Def string }])
	if err != nil {
		return err
	}
	for _, c := range cons {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s.%s ADD CONSTRAINT %s %s`, rebuildSchema, table, pgx.Identifier{c.Name}.Sanitize(), c.Def)); err != nil {
			return fmt.Errorf("constraint %s: %w", c.Name, err)
		}
	}
	rows, err = conn.Query(ctx, `
		SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
		WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
		ORDER BY i.indexrelid`, live)
	if err != nil {
		return err
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, def := range defs {
		moved := strings.Replace(def, " ON "+live+" ", " ON "+rebuildSchema+"."+table+" ", 1)
		if moved == def {
			return fmt.Errorf("index definition not understood: %s", def)
		}
		if _, err := conn.Exec(ctx, moved); err != nil {
			return fmt.Errorf("index: %s: %w", moved, err)
		}
	}
	return nil
}

// replay reads a stream with an ordered consumer and applies it to the
// tables in rebuildSchema.
type replay struct {
	cons jetstream.Consumer
	conn *pgx.Conn
	spec projectionSpec
	seq  uint64
}

// beginner is a connection or a transaction.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// step applies one batch in a transaction of db and reports how many
// events it applied and whether it reached the end of the stream.
func (r *replay) step(ctx context.Context, db beginner) (int, bool, error) {
	batch, err := r.cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return 0, false, fmt.Errorf("replay %s: %w", r.spec.stream, err)
	}
	var ds []*messaging.Delivery
	caughtUp := false
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			return 0, false, err
		}
		ds = append(ds, &messaging.Delivery{
			Subject: msg.Subject(), Stream: meta.Stream, StreamSeq: meta.Sequence.Stream,
			Delivered: 1, Time: meta.Timestamp, Header: msg.Headers(), Payload: msg.Data(),
		})
		caughtUp = meta.NumPending == 0
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return 0, false, fmt.Errorf("replay %s: %w", r.spec.stream, err)
	}
	if len(ds) == 0 {
		return 0, true, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// An event the live projector dead-lettered is skipped here too, one
	// by one, so one bad event does not fail the rebuild.
	applied := 0
	if _, err := applyBatch(ctx, tx, r.spec, rebuildSchema, ds, false); err != nil {
		if !messaging.IsPermanent(err) {
			return 0, false, err
		}
		if err := tx.Rollback(ctx); err != nil {
			return 0, false, err
		}
		if tx, err = db.Begin(ctx); err != nil {
			return 0, false, err
		}
		for _, d := range ds {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return 0, false, err
			}
			if _, err := applyBatch(ctx, sp, r.spec, rebuildSchema, []*messaging.Delivery{d}, false); err != nil {
				if !messaging.IsPermanent(err) {
					return 0, false, err
				}
				_ = sp.Rollback(ctx)
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return 0, false, err
			}
			applied++
		}
	} else {
		applied = len(ds)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, err
	}
	r.seq = ds[len(ds)-1].StreamSeq
	return applied, caughtUp, nil
}
