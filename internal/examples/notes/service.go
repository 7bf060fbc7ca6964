// Package notes is the smallest complete Switchboard service, the worked
// example of docs/architecture.md ("Adding a service"): a contract, an
// entity in the shared event store, an endpoint table, and Start/Stop in
// the shape every service has. Its test follows the guide's steps and
// checks what the guide promises: discovery by the nats CLI's subjects,
// validation, optimistic concurrency, idempotent creates, public events
// and the HTTP gateway, with no code beyond these files.
package notes

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/internal/examples/notes/contract"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
)

// Options are the service's dependencies, in the shape every service
// takes them.
type Options struct {
	Logger *slog.Logger
	Cache  cache.Config
	Limits messaging.Limits
	// Replication is given to the NOTES stream (--stream-replicas).
	Replication messaging.Replication
	// Telemetry measures and traces the service; nil for none.
	Telemetry *telemetry.Telemetry
}

// Service is a running notes service.
type Service struct {
	svc *messaging.Service
	es  *eventstore.Store[contract.Note]
}

// Start opens the NOTES stream (creating it when missing) and serves the
// endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (*Service, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	tel := opts.Telemetry.For(contract.ServiceName)
	cfg := entity()
	cfg.Logger, cfg.Cache, cfg.Replication, cfg.Telemetry = logger, opts.Cache, opts.Replication, tel
	es, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		return nil, fmt.Errorf("notes: %w", err)
	}
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{
		Name:        contract.ServiceName,
		Version:     contract.Version,
		Description: "Notes: the example service of docs/architecture.md",
		Logger:      logger,
		Telemetry:   tel,
		Limits:      opts.Limits,
		Middleware:  []messaging.Middleware{messaging.MapErrors(errorRules()...)},
		Consumers:   es.Consumers(),
	}, routes(&store{es: es})...)
	if err != nil {
		es.Close()
		return nil, fmt.Errorf("notes: %w", err)
	}
	return &Service{svc: svc, es: es}, nil
}

// Name returns "notes".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Ready reports whether the service serves and its stream is reachable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.svc.Err(); err != nil {
		return err
	}
	return s.es.Ready(ctx)
}

// Stop stops taking requests, finishes those in flight (bounded by ctx)
// and closes the store.
func (s *Service) Stop(ctx context.Context) error {
	err := s.svc.Stop(ctx)
	s.es.Close()
	return err
}
