package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/projector/contract"
	"github.com/devloop/switchboard/telemetry"
)

// Defaults of Options.
const (
	DefaultBatchSize = 200
)

// ErrNoPostgres is returned by Start without a PostgreSQL URL.
var ErrNoPostgres = errors.New("projector: needs a PostgreSQL URL (--postgres-url)")

// Options are the projector's dependencies, in the shape every service
// takes them, and its tuning.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Limits bound the endpoints (timeout, concurrency, payload).
	Limits messaging.Limits
	// Telemetry measures and traces the service and its consumers
	// (docs/observability.md); nil does neither.
	Telemetry *telemetry.Telemetry
	// Replication is given to the dead-letter stream if the projector's
	// consumers are the first to need it.
	Replication messaging.Replication

	// PostgresURL is a postgres:// URL or DSN of the database; required.
	PostgresURL string
	// PoolSize bounds the query pool's connections; 0 is pgx's default.
	PoolSize int
	// BatchSize is the most events written in one transaction
	// (default DefaultBatchSize).
	BatchSize int
	// RetryBase and RetryMax bound the backoff of a batch the database
	// refused (defaults 100ms and 5s).
	RetryBase, RetryMax time.Duration

	beforeCommit func(batch []*messaging.Delivery) // tests
}

// Service is a running projector.
type Service struct {
	svc         *messaging.Service
	pool        *pgxpool.Pool
	queries     *queries
	projections []*projection
	logger      *slog.Logger

	migrateMu sync.Mutex
	migrated  bool
	applied   int // migrations this replica applied
}

// Start serves the queries and starts following the streams. It does not
// wait for PostgreSQL: while it is unreachable the projector is degraded
// (queries answer 503, events wait in the streams) and it connects,
// migrates and catches up once it answers.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (*Service, error) {
	if opts.PostgresURL == "" {
		return nil, ErrNoPostgres
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	poolCfg, err := pgxpool.ParseConfig(opts.PostgresURL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("projector: PostgreSQL URL does not parse (want postgres://user:password@host:5432/db)")
	}
	if opts.PoolSize > 0 {
		poolCfg.MaxConns = int32(opts.PoolSize)
	}
	if poolCfg.ConnConfig.ConnectTimeout == 0 {
		poolCfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	s := &Service{pool: pool, queries: &queries{pool: pool, js: js}, logger: logger}
	tel := opts.Telemetry.For(contract.ServiceName)
	run := runOptions{batchSize: opts.BatchSize, retryBase: opts.RetryBase, retryMax: opts.RetryMax, telemetry: tel, replication: opts.Replication, beforeCommit: opts.beforeCommit}
	if run.batchSize <= 0 {
		run.batchSize = DefaultBatchSize
	}
	if run.retryBase <= 0 {
		run.retryBase = 100 * time.Millisecond
	}
	if run.retryMax <= 0 {
		run.retryMax = 5 * time.Second
	}
	for _, spec := range specs() {
		s.projections = append(s.projections, &projection{
			spec:    spec,
			js:      js,
			connCfg: poolCfg.ConnConfig.Copy(),
			migrate: s.migrate,
			opts:    run,
			logger:  logger.With(slog.String("projection", spec.name)),
		})
	}
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{
		Name:          contract.ServiceName,
		Version:       contract.Version,
		Description:   "Projector: users and orders in PostgreSQL, fed exactly-once from USERS and ORDERS; users.search, orders.search",
		Logger:        opts.Logger, // NewService adds service=<name>
		Telemetry:     tel,
		Limits:        opts.Limits,
		ConsumerStats: s.consumerStats,
	}, routes(s)...)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("projector: %w", err)
	}
	s.svc = svc
	for _, p := range s.projections {
		p.start()
	}
	return s, nil
}

// migrate runs the migrations once per process.
func (s *Service) migrate(ctx context.Context) error {
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()
	if s.migrated {
		return nil
	}
	n, err := Migrate(ctx, s.pool, s.logger)
	if err != nil {
		return err
	}
	s.migrated, s.applied = true, n
	return nil
}

// MigrationsApplied is how many migrations this replica applied (0 when
// another replica, or an earlier run, had applied them).
func (s *Service) MigrationsApplied() int {
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()
	return s.applied
}

func (s *Service) consumerStats(ctx context.Context) map[string]messaging.ConsumerStats {
	out := map[string]messaging.ConsumerStats{}
	for _, p := range s.projections {
		out[p.spec.durable] = p.consumerStats(ctx)
	}
	return out
}

// Status returns each projection's state in this replica.
func (s *Service) Status(ctx context.Context) contract.StatusResponse {
	out := contract.StatusResponse{Projections: map[string]contract.ProjectionStatus{}}
	for _, p := range s.projections {
		seq, _ := s.queries.position(ctx, p.spec.stream)
		out.Projections[p.spec.name] = p.status(ctx, seq)
	}
	return out
}

// Name returns "projector".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Ready reports whether the service serves. PostgreSQL being unreachable
// does not make it unready (see Degraded): events wait in the streams.
func (s *Service) Ready(context.Context) error { return s.svc.Err() }

// Degraded reports why the projector works at reduced capacity: nil while
// PostgreSQL answers.
func (s *Service) Degraded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres unreachable: queries answer 503, events wait in the streams: %w", err)
	}
	for _, p := range s.projections {
		if err := p.postgresErr(); err != nil {
			return fmt.Errorf("projection %s: postgres session: %w", p.spec.name, err)
		}
	}
	return nil
}

// Stop stops taking requests, stops the projections (their leaders hand
// back what they hold and free their locks) and closes the pool.
func (s *Service) Stop(ctx context.Context) error {
	errs := []error{s.svc.Stop(ctx)}
	for _, p := range s.projections {
		errs = append(errs, p.Stop(ctx))
	}
	s.pool.Close()
	return errors.Join(errs...)
}
