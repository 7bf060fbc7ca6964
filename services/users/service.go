package users

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/telemetry"
)

// Options are the users service's dependencies, in the shape every
// service takes them.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Cache configures the caches in front of the USERS stream: the
	// in-process one, and a shared one (Redis) when Cache.Backend is set.
	Cache cache.Config
	// Limits bound the endpoints (timeout, concurrency, payload).
	Limits messaging.Limits
	// Replication is given to the streams and buckets the service
	// declares.
	Replication messaging.Replication
	// Telemetry measures and traces the service (docs/observability.md);
	// nil does neither.
	Telemetry *telemetry.Telemetry
}

// Service is a running users service.
type Service struct {
	svc   *messaging.Service
	store *store
}

// Start declares the USERS stream and serves the users endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (*Service, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	tel := opts.Telemetry.For(contract.ServiceName)
	cfg := Entity()
	cfg.Logger = logger
	cfg.Cache = opts.Cache
	cfg.Replication = opts.Replication
	cfg.Telemetry = tel
	es, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	s := &store{es: es, now: time.Now}
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{
		Name:        contract.ServiceName,
		Version:     contract.Version,
		Description: "Users: create, read, update, delete and list; events on users.events.<id>",
		Logger:      opts.Logger, // NewService adds service=<name>
		Telemetry:   tel,
		Limits:      opts.Limits,
		Middleware:  []messaging.Middleware{messaging.MapErrors(errorRules()...)},
		Consumers:   s.es.Consumers(),
	}, routes(s, messaging.MaxReply(nc))...)
	if err != nil {
		s.es.Close()
		return nil, fmt.Errorf("users: %w", err)
	}
	return &Service{svc: svc, store: s}, nil
}

// Name returns "users".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Stop stops taking requests, waits for those in flight (bounded by ctx)
// and stops the store's feeds.
func (s *Service) Stop(ctx context.Context) error {
	err := s.svc.Stop(ctx)
	s.store.es.Close()
	return err
}

// CacheStats returns the counters of the caches in front of the stream.
func (s *Service) CacheStats() eventstore.CacheStats { return s.store.es.CacheStats() }

// Ready reports whether the service serves and its stream is reachable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.svc.Err(); err != nil {
		return err
	}
	return s.store.es.Ready(ctx)
}
