package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
)

// Defaults of Options.
const (
	DefaultWorkers    = 4
	DefaultMaxDeliver = 8
	DefaultRetryBase  = time.Second
	DefaultRetryMax   = 5 * time.Minute
)

// Options are the notifications service's dependencies and tuning. The
// zero value of each optional field is a sensible default.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Service tunes the micro service (timeouts, concurrency).
	Service messaging.ServiceConfig
	// Cache records delivered events, shared by replicas when it is
	// Redis. Nil keeps them in the NOTIFICATIONS_DELIVERED bucket.
	Cache cache.Backend
	// WebhooksFile is a TOML file of [[webhook]] tables put into the
	// webhooks bucket at start ("" for none).
	WebhooksFile string
	// AllowPrivate lets webhooks target private, loopback and link-local
	// addresses. Leave it false wherever webhook URLs come from people
	// who should not reach the internal network.
	AllowPrivate bool
	// HTTPClient replaces the outbound client (tests); it then also
	// decides about redirects and private addresses.
	HTTPClient *http.Client
	// DeliveryTimeout bounds one webhook request, from dial to the end of
	// the response (default DefaultDeliveryTimeout).
	DeliveryTimeout time.Duration
	// Workers bounds the deliveries in flight per webhook and replica
	// (default DefaultWorkers).
	Workers int
	// MaxDeliver is the number of attempts before a delivery is
	// dead-lettered (default DefaultMaxDeliver).
	MaxDeliver int
	// RetryBase and RetryMax shape the backoff between attempts:
	// RetryBase·2^(attempt-1) with jitter, at most RetryMax (defaults
	// DefaultRetryBase, DefaultRetryMax). A Retry-After is honoured up to
	// RetryMax.
	RetryBase, RetryMax time.Duration
}

// Service is a running notifications service.
type Service struct {
	js           jetstream.JetStream
	pub          *messaging.Publisher
	kv           jetstream.KeyValue
	stream       jetstream.Stream
	reg          *registry
	disp         *dispatcher
	allowPrivate bool
	logger       *slog.Logger

	svc       *messaging.Service
	fanOut    []*messaging.Consumer
	stopWatch context.CancelFunc
	watchDone <-chan struct{}
}

// Start declares the NOTIFICATIONS stream and the webhooks bucket, loads
// the webhooks file, starts watching the webhooks, the fan-out consumers of
// the users and orders events and a delivery consumer per webhook, and
// serves the notifications endpoints on nc.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (_ *Service, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("service", contract.ServiceName))
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MaxDeliver <= 0 {
		opts.MaxDeliver = DefaultMaxDeliver
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	client := opts.HTTPClient
	if client == nil {
		client = newHTTPClient(opts.DeliveryTimeout, opts.AllowPrivate)
	}

	// Read the file first: a mistake in it should stop start-up before
	// anything is declared.
	var fromFile []contract.Webhook
	if opts.WebhooksFile != "" {
		if fromFile, err = loadFile(opts.WebhooksFile, opts.AllowPrivate); err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
	}

	s := &Service{reg: newRegistry(), allowPrivate: opts.AllowPrivate, logger: logger}
	// Stop what was started when a later step fails.
	defer func() {
		if err != nil {
			_ = s.Stop(context.Background())
			err = fmt.Errorf("notifications: %w", err)
		}
	}()
	if s.js, err = jetstream.New(nc); err != nil {
		return nil, err
	}
	if s.pub, err = messaging.NewPublisher(nc); err != nil {
		return nil, err
	}
	if s.stream, err = messaging.EnsureStream(ctx, s.js, jetstream.StreamConfig{
		Name:        contract.Stream,
		Description: "Webhook delivery tasks, on notifications.deliveries.<webhook id>.",
		Subjects:    []string{contract.DeliverySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxAge:      DeliveredTTL,
		Duplicates:  10 * time.Minute,
	}); err != nil {
		return nil, err
	}
	if s.kv, err = messaging.EnsureKeyValue(ctx, s.js, jetstream.KeyValueConfig{
		Bucket:      contract.Bucket,
		Description: "Webhooks by id (with their secrets).",
		Storage:     jetstream.FileStorage,
		History:     1,
	}); err != nil {
		return nil, err
	}
	var delivered deliveredStore
	if opts.Cache != nil {
		delivered = cacheDelivered{b: opts.Cache, prefix: cache.DefaultPrefix + "notifications:delivered:"}
	} else if delivered, err = openKVDelivered(ctx, s.js); err != nil {
		return nil, err
	}
	for _, h := range fromFile {
		if _, err = putWebhook(ctx, s.kv, h); err != nil {
			return nil, err
		}
	}
	if len(fromFile) > 0 {
		logger.Info("webhooks file loaded", slog.String("file", opts.WebhooksFile), slog.Int("webhooks", len(fromFile)))
	}

	d := &deliverer{reg: s.reg, client: client, delivered: delivered, now: time.Now}
	s.disp = &dispatcher{
		js:  s.js,
		reg: s.reg,
		cfg: messaging.ConsumerConfig{
			Workers:        opts.Workers,
			MaxDeliver:     opts.MaxDeliver,
			RetryBase:      opts.RetryBase,
			RetryMax:       opts.RetryMax,
			HandlerTimeout: opts.DeliveryTimeout + 10*time.Second,
		},
		handler:     d.deliver,
		stopTimeout: 5 * time.Second,
		logger:      logger,
		consumers:   map[string]*messaging.Consumer{},
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	s.stopWatch = stopWatch
	s.watchDone, err = watch(wctx, s.kv, s.reg, func(id string) {
		sctx, cancel := context.WithTimeout(wctx, 10*time.Second)
		defer cancel()
		if err := s.disp.sync(sctx, id); err != nil {
			logger.Error("webhook changed, but its deliveries could not follow", slog.String("webhook_id", id), slog.String("error", err.Error()))
		}
	}, func(err error) { logger.Error("webhooks bucket", slog.String("error", err.Error())) })
	if err != nil {
		return nil, err
	}
	if s.fanOut, err = consumeEvents(ctx, s.js, s.reg, s.pub, logger); err != nil {
		return nil, err
	}
	cfg := opts.Service
	cfg.Name = contract.ServiceName
	cfg.Version = contract.Version
	cfg.Description = "Notifications: signed HTTP webhooks for users and orders events"
	cfg.Consumers = append(cfg.Consumers, s.fanOut...)
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	if s.svc, err = messaging.NewService(nc, cfg, routes(s)...); err != nil {
		return nil, err
	}
	return s, nil
}

// Name returns "notifications".
func (s *Service) Name() string { return contract.ServiceName }

// Err returns nil while the service serves.
func (s *Service) Err() error { return s.svc.Err() }

// Ready reports whether the service serves and its stream is reachable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.svc.Err(); err != nil {
		return err
	}
	if _, err := s.stream.Info(ctx); err != nil {
		return fmt.Errorf("stream %s: %w", contract.Stream, err)
	}
	return nil
}

// Stop stops taking requests, events and deliveries, and waits for those
// in flight (bounded by ctx; deliveries still running then are cancelled
// and redelivered later). Calling it again is harmless.
func (s *Service) Stop(ctx context.Context) error {
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.Stop(ctx))
	}
	for _, c := range s.fanOut {
		errs = append(errs, c.Stop(ctx))
	}
	if s.stopWatch != nil {
		s.stopWatch()
		if s.watchDone != nil {
			select {
			case <-s.watchDone:
			case <-ctx.Done():
			}
		}
	}
	if s.disp != nil {
		errs = append(errs, s.disp.stop(ctx))
	}
	return errors.Join(errs...)
}
