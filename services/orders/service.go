package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
)

// Options are the orders service's dependencies.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Service tunes the micro service (timeouts, concurrency).
	Service messaging.ServiceConfig
	// UsersTimeout bounds each call to users (default DefaultUsersTimeout).
	UsersTimeout time.Duration
}

// Service is a running orders service.
type Service struct {
	svc      *messaging.Service
	store    *store
	consumer *messaging.Consumer
}

// Start declares the ORDERS stream and buckets, starts the consumer of user
// events and serves the orders endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (*Service, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	pub, err := messaging.NewPublisher(nc)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	s, err := openStore(ctx, js, pub, logger)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	client, err := messaging.NewClient(nc)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("orders: %w", err)
	}
	timeout := opts.UsersTimeout
	if timeout <= 0 {
		timeout = DefaultUsersTimeout
	}
	consumer, err := consumeUserEvents(ctx, js, s, logger)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("orders: %w", err)
	}
	cfg := opts.Service
	cfg.Name = contract.ServiceName
	cfg.Version = contract.Version
	cfg.Description = "Orders: place, read, list and cancel; events on orders.events.<id>.<kind>"
	cfg.Consumers = append(cfg.Consumers, consumer)
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	svc, err := messaging.NewService(nc, cfg, routes(s, usersClient{client: client, timeout: timeout})...)
	if err != nil {
		_ = consumer.Stop(ctx)
		s.close()
		return nil, fmt.Errorf("orders: %w", err)
	}
	return &Service{svc: svc, store: s, consumer: consumer}, nil
}

// Name returns "orders".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Ready reports whether the service serves and its stream is reachable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.svc.Err(); err != nil {
		return err
	}
	if _, err := s.store.stream.Info(ctx); err != nil {
		return fmt.Errorf("stream %s: %w", contract.Stream, err)
	}
	return nil
}

// Stop stops taking requests and events, waits for those in flight
// (bounded by ctx) and stops the list view.
func (s *Service) Stop(ctx context.Context) error {
	err := errors.Join(s.svc.Stop(ctx), s.consumer.Stop(ctx))
	s.store.close()
	return err
}
