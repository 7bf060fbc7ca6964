package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/projector/contract"
	"github.com/devloop/switchboard/telemetry"
)

// Timings of a projection's leadership loop.
const (
	standbyPoll    = 500 * time.Millisecond // a standby tries the lock this often
	leaderPing     = time.Second            // an idle leader checks its session this often
	reconnectMax   = 5 * time.Second        // longest wait between connection attempts
	connectTimeout = 5 * time.Second
)

// projection follows one stream into its tables. Replicas elect one
// leader per projection with a session advisory lock: the leader's
// connection holds the lock and carries every write, so a replica that
// lost its session (and with it the lock) can write nothing more. Only the
// leader runs the consumer. When it starts leading, it positions the
// durable consumer just after the sequence the tables hold, so the stream
// is delivered from there in order, whatever the previous leader had
// fetched.
type projection struct {
	spec    projectionSpec
	js      jetstream.JetStream
	connCfg *pgx.ConnConfig
	migrate func(context.Context) error
	opts    runOptions
	logger  *slog.Logger

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	role     string
	consumer *messaging.Consumer
	pgErr    error // nil while PostgreSQL answers
	lastErr  string

	applied, unchanged, batches atomic.Uint64
}

type runOptions struct {
	batchSize    int
	retryBase    time.Duration
	retryMax     time.Duration
	telemetry    *telemetry.Telemetry
	replication  messaging.Replication
	beforeCommit func(batch []*messaging.Delivery)
}

func (p *projection) start() {
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.role = contract.RoleStarting
	p.pgErr = errors.New("not connected yet")
	go p.run()
}

// run connects, waits for the lock and leads, again and again, until Stop.
func (p *projection) run() {
	defer close(p.done)
	wait := 100 * time.Millisecond
	for !p.stopped() {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		conn, err := pgx.ConnectConfig(ctx, p.connCfg)
		cancel()
		if err == nil {
			wait = 100 * time.Millisecond
			p.session(conn)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(ctx)
			cancel()
			continue
		}
		p.setPG(err)
		p.logger.Warn("postgres unreachable; retrying", slog.String("error", err.Error()), slog.Duration("in", wait))
		if !p.sleep(wait) {
			return
		}
		wait = min(wait*2, reconnectMax)
	}
}

// session runs one PostgreSQL session: migrate, wait for the lock, lead
// until the session is lost or Stop.
func (p *projection) session(conn *pgx.Conn) {
	ctx, cancel := p.context()
	defer cancel()
	if err := p.migrate(ctx); err != nil {
		p.setPG(err)
		p.logger.Warn("migration failed; retrying", slog.String("error", err.Error()))
		p.sleep(time.Second)
		return
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLock(p.spec)).Scan(&got); err != nil {
			p.setPG(err)
			return
		}
		p.setPG(nil)
		if got {
			break
		}
		p.setRole(contract.RoleStandby, nil)
		if !p.sleep(standbyPoll) {
			return
		}
	}
	p.lead(ctx, conn)
}

// lead runs the consumer while conn, which holds the lock, lives.
func (p *projection) lead(ctx context.Context, conn *pgx.Conn) {
	var last int64
	if err := conn.QueryRow(ctx, `SELECT last_seq FROM projector.positions WHERE stream = $1`, p.spec.stream).Scan(&last); err != nil {
		p.setPG(err)
		return
	}
	// The consumer starts just after what the tables hold, whatever an
	// earlier leader fetched and did not commit.
	if err := p.js.DeleteConsumer(ctx, p.spec.stream, p.spec.durable); err != nil &&
		!errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		p.fail(fmt.Errorf("reposition consumer %s: %w", p.spec.durable, err))
		p.sleep(time.Second)
		return
	}
	cfg := messaging.ConsumerConfig{
		Stream:         p.spec.stream,
		Durable:        p.spec.durable,
		Description:    fmt.Sprintf("projector: %s into PostgreSQL (%s.%s)", p.spec.filter, Schema, p.spec.tables[0]),
		FilterSubjects: []string{p.spec.filter},
		// A database outage is waited out; only an event that cannot be
		// applied (Permanent) is dead-lettered.
		MaxDeliver:  messaging.RetryForever,
		BatchSize:   p.opts.batchSize,
		RetryBase:   p.opts.retryBase,
		RetryMax:    p.opts.retryMax,
		Logger:      p.logger,
		Telemetry:   p.opts.telemetry,
		Replication: p.opts.replication,
	}
	if last > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = uint64(last) + 1
	}
	var connMu sync.Mutex // the batch worker and the pinger share conn
	lost := make(chan struct{})
	var lostOnce sync.Once
	markLost := func(err error) {
		lostOnce.Do(func() {
			p.setPG(err)
			p.logger.Warn("postgres session lost; giving up the lead", slog.String("error", err.Error()))
			close(lost)
		})
	}
	c, err := messaging.ConsumeBatches(ctx, p.js, cfg, func(ctx context.Context, ds []*messaging.Delivery) error {
		connMu.Lock()
		defer connMu.Unlock()
		err := p.apply(ctx, conn, ds)
		if err != nil && conn.IsClosed() {
			markLost(err)
		}
		return err
	})
	if err != nil {
		p.fail(err)
		p.sleep(time.Second)
		return
	}
	p.setRole(contract.RoleLeader, c)
	p.logger.Info("leading", slog.Uint64("from_seq", uint64(last)+1))
	tick := time.NewTicker(leaderPing)
	defer tick.Stop()
loop:
	for {
		select {
		case <-lost:
			break loop
		case <-p.stop:
			break loop
		case <-tick.C:
			connMu.Lock()
			pctx, pcancel := context.WithTimeout(ctx, connectTimeout)
			err := conn.Ping(pctx)
			pcancel()
			connMu.Unlock()
			if err != nil {
				markLost(err)
			}
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = c.Stop(sctx)
	scancel()
	p.setRole(contract.RoleStarting, nil)
}

// apply writes one batch and the stream position in one transaction.
func (p *projection) apply(ctx context.Context, conn *pgx.Conn, ds []*messaging.Delivery) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	res, err := applyBatch(ctx, tx, p.spec, Schema, ds, true)
	if err != nil {
		return err
	}
	if p.opts.beforeCommit != nil {
		p.opts.beforeCommit(ds)
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	p.applied.Add(uint64(res.applied))
	p.unchanged.Add(uint64(res.unchanged))
	p.batches.Add(1)
	return nil
}

func (p *projection) context() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (p *projection) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// sleep waits d, and reports false when Stop came first.
func (p *projection) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}

func (p *projection) setPG(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pgErr = err
	if err != nil {
		p.lastErr = err.Error()
	}
}

func (p *projection) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err.Error()
	p.logger.Warn("projection interrupted", slog.String("error", err.Error()))
}

func (p *projection) setRole(role string, c *messaging.Consumer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.role, p.consumer = role, c
}

// postgresErr is nil while this projection's PostgreSQL session answers.
func (p *projection) postgresErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pgErr
}

// Stop ends the loop: the leader stops its consumer (what it holds goes
// back to the server) and closes its session, which frees the lock for a
// standby.
func (p *projection) Stop(ctx context.Context) error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop projection %s: %w", p.spec.name, ctx.Err())
	}
}

// consumerStats is the consumer's health while this replica leads, and
// the server's view of it otherwise.
func (p *projection) consumerStats(ctx context.Context) messaging.ConsumerStats {
	p.mu.Lock()
	c, role, lastErr := p.consumer, p.role, p.lastErr
	p.mu.Unlock()
	if c != nil {
		return c.Stats(ctx)
	}
	st := messaging.ConsumerStats{Stream: p.spec.stream, Consumer: p.spec.durable, LastError: role}
	switch {
	case role == contract.RoleStandby:
		st.LastError = "standby: another replica leads"
	case lastErr != "":
		st.LastError = role + ": " + lastErr
	}
	cons, err := p.js.Consumer(ctx, p.spec.stream, p.spec.durable)
	if err != nil {
		st.InfoUnavailable = true
		return st
	}
	st.ReadBacklog(ctx, cons)
	return st
}

// status is the projection's state in this replica; applied is the
// sequence the tables hold (0 when unknown).
func (p *projection) status(ctx context.Context, applied uint64) contract.ProjectionStatus {
	st := p.consumerStats(ctx)
	p.mu.Lock()
	role, lastErr, pgOK := p.role, p.lastErr, p.pgErr == nil
	p.mu.Unlock()
	out := contract.ProjectionStatus{
		Stream:          p.spec.stream,
		Consumer:        p.spec.durable,
		Role:            role,
		AppliedSequence: applied,
		Pending:         st.Pending,
		Applied:         p.applied.Load(),
		Unchanged:       p.unchanged.Load(),
		Batches:         p.batches.Load(),
		PostgresOK:      pgOK,
		LastError:       lastErr,
	}
	if s, err := p.js.Stream(ctx, p.spec.stream); err == nil {
		out.StreamSequence = s.CachedInfo().State.LastSeq
	}
	return out
}
