package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/telemetry"
)

// Options are the orders service's dependencies, in the shape every
// service takes them.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Cache configures the caches in front of the ORDERS stream.
	Cache cache.Config
	// Limits bound the endpoints (timeout, concurrency, payload).
	Limits messaging.Limits
	// Replication is given to the streams and buckets the service
	// declares.
	Replication messaging.Replication
	// Telemetry measures and traces the service (docs/observability.md);
	// nil does neither.
	Telemetry *telemetry.Telemetry
	// UsersTimeout bounds each call to users (default DefaultUsersTimeout).
	UsersTimeout time.Duration
}

// Service is a running orders service.
type Service struct {
	svc      *messaging.Service
	store    *store
	consumer *messaging.Consumer
}

// Start declares the ORDERS stream, starts the consumer of user events and
// serves the orders endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (_ *Service, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	timeout := opts.UsersTimeout
	if timeout <= 0 {
		timeout = DefaultUsersTimeout
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	tel := opts.Telemetry.For(contract.ServiceName)
	client, err := messaging.NewClient(nc, messaging.WithTelemetry(tel))
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	cfg := entity()
	cfg.Logger = logger
	cfg.Cache = opts.Cache
	cfg.Replication = opts.Replication
	cfg.Telemetry = tel
	es, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	s := &store{es: es, now: time.Now}
	svc := &Service{store: s}
	defer func() {
		if err != nil {
			_ = svc.Stop(context.Background())
			err = fmt.Errorf("orders: %w", err)
		}
	}()
	if svc.consumer, err = consumeUserEvents(ctx, js, s, logger, tel, opts.Replication); err != nil {
		return nil, err
	}
	svc.svc, err = messaging.NewService(nc, messaging.ServiceConfig{
		Name:        contract.ServiceName,
		Version:     contract.Version,
		Description: "Orders: place, read, list and cancel; events on orders.events.<id>.<kind>",
		Logger:      opts.Logger, // NewService adds service=<name>
		Telemetry:   tel,
		Limits:      opts.Limits,
		Middleware:  []messaging.Middleware{messaging.MapErrors(errorRules()...)},
		Consumers:   append([]*messaging.Consumer{svc.consumer}, s.es.Consumers()...),
	}, routes(s, usersClient{client: client, js: js, timeout: timeout}, messaging.MaxReply(nc))...)
	if err != nil {
		return nil, err
	}
	return svc, nil
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
	return s.store.es.Ready(ctx)
}

// Stop stops taking requests and events, and waits for those in flight
// (bounded by ctx). Calling it again is harmless.
func (s *Service) Stop(ctx context.Context) error {
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.Stop(ctx))
	}
	if s.consumer != nil {
		errs = append(errs, s.consumer.Stop(ctx))
	}
	s.store.es.Close()
	return errors.Join(errs...)
}
