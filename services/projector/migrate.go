package projector

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/devloop/switchboard/services/projector/migrations"
)

// Advisory lock keys of the projector (pg_advisory_lock's bigint space is
// shared by every application of the database: these are derived from
// "switchboard-projector" to stay out of others' way).
const (
	lockSchema     int64 = 0x5357_5052_0000_0001 // creating the schema
	lockMigrations int64 = 0x5357_5052_0000_0002 // goose's migrations
	lockUsers      int64 = 0x5357_5052_0000_0010 // the users projection's leader
	lockOrders     int64 = 0x5357_5052_0000_0011 // the orders projection's leader
)

func leaderLock(spec projectionSpec) int64 {
	if spec.name == "users" {
		return lockUsers
	}
	return lockOrders
}

// Migrate brings the projector's schema up to date and returns how many
// migrations it applied. Replicas may call it at once: goose holds a
// session advisory lock while it migrates, so one applies the migrations
// and the others find nothing left to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (int, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// goose keeps its version table in the schema, so the schema comes
	// first, under a lock of its own: CREATE SCHEMA IF NOT EXISTS races
	// with itself.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockSchema); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+Schema); err != nil {
		return 0, fmt.Errorf("migrate: create schema %s: %w", Schema, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}

	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockMigrations),
		// Another replica migrating holds the lock for seconds at most.
		lock.WithLockTimeout(1, 120),
	)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithTableName(Schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	start := time.Now()
	results, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	version, _ := p.GetDBVersion(ctx)
	if len(results) > 0 {
		logger.Info("schema migrated", slog.Int("applied", len(results)), slog.Int64("version", version), slog.Duration("took", time.Since(start)))
	}
	return len(results), nil
}
