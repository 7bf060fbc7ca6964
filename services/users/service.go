package users

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
)

// Options are the users service's dependencies.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Decorate, when set, wraps the event store before the endpoints use
	// it (the cache goes here).
	Decorate func(Store) Store
	// Service tunes the micro service (concurrency, payload limits).
	Service messaging.ServiceConfig
}

// Service is a running users service.
type Service struct {
	svc    *messaging.Service
	events *EventStore
}

// Start declares the USERS stream and buckets, and serves the users
// endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (*Service, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	events, err := OpenEventStore(ctx, js, logger.With(slog.String("service", contract.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var store Store = events
	if opts.Decorate != nil {
		store = opts.Decorate(store)
	}
	cfg := opts.Service
	cfg.Name = contract.ServiceName
	cfg.Version = contract.Version
	cfg.Description = "Users: create, read, update, delete and list; events on users.events.<id>"
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	svc, err := messaging.NewService(nc, cfg, routes(store)...)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("users: %w", err)
	}
	return &Service{svc: svc, events: events}, nil
}

// Name returns "users".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Stop stops taking requests, waits for those in flight (bounded by ctx)
// and stops the list view.
func (s *Service) Stop(ctx context.Context) error {
	err := s.svc.Stop(ctx)
	s.events.Close()
	return err
}

// Ready reports whether the service serves and its stream is reachable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.svc.Err(); err != nil {
		return err
	}
	if _, err := s.events.stream.Info(ctx); err != nil {
		return fmt.Errorf("stream %s: %w", contract.Stream, err)
	}
	return nil
}
