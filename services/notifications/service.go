package notifications

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/lifecycle"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/telemetry"
)

// Defaults of Options.
const (
	DefaultWorkers    = 4
	DefaultMaxDeliver = 8
	DefaultRetryBase  = time.Second
	DefaultRetryMax   = 5 * time.Minute
)

// Options are the notifications service's dependencies, in the shape
// every service takes them, and its tuning. The zero value of each
// optional field is a sensible default.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Cache.Backend, when set (Redis), records delivered events for all
	// replicas; without it they are kept in the NOTIFICATIONS_DELIVERED
	// bucket.
	Cache cache.Config
	// Limits bound the endpoints (timeout, concurrency, payload).
	Limits messaging.Limits
	// Replication is given to the streams and buckets the service
	// declares.
	Replication messaging.Replication
	// Telemetry measures and traces the service (docs/observability.md):
	// with tracing on, each webhook POST is a span and carries its trace
	// context (traceparent); nil does neither.
	Telemetry *telemetry.Telemetry

	// WebhooksFile is a TOML file of [[webhook]] tables put into the
	// webhooks bucket at start ("" for none).
	WebhooksFile string
	// AllowPrivate lets webhooks target private, loopback and link-local
	// addresses. Leave it false wherever webhook URLs come from people
	// who should not reach the internal network.
	AllowPrivate bool
	// EncryptionKey is the 32-byte key that encrypts the webhooks'
	// secrets in their bucket (AES-256-GCM); required. Keep it: secrets
	// stored under one key do not open with another.
	EncryptionKey []byte
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

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.HTTPClient == nil {
		o.HTTPClient = newHTTPClient(o.DeliveryTimeout, o.AllowPrivate)
	}
}

// Service is a running notifications service.
type Service struct {
	svc    *messaging.Service
	tasks  jetstream.Stream
	parts  lifecycle.Stack
	fanOut []*messaging.Consumer
}

// TasksStreamConfig is the NOTIFICATIONS stream: a delivery task per
// webhook and event, on notifications.deliveries.<webhook id>.
func TasksStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        contract.Stream,
		Description: "Webhook delivery tasks, on notifications.deliveries.<webhook id>.",
		Subjects:    []string{contract.DeliverySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxAge:      DeliveredTTL,
		Duplicates:  10 * time.Minute,
	}
}

// Start brings the service up, step by step, each step registering how it
// stops, so that a failure half-way stops what was started: read the
// webhooks file, declare the tasks stream and the webhooks bucket, put
// the file's webhooks, watch the bucket (starting a delivery consumer per
// webhook), start the fan-out of users and orders events, and serve the
// endpoints.
func Start(ctx context.Context, nc *nats.Conn, opts Options) (_ *Service, err error) {
	opts.defaults()
	logger := opts.Logger.With(slog.String("service", contract.ServiceName))
	tel := opts.Telemetry.For(contract.ServiceName)
	if tel.Tracing() {
		// A copy: a client the caller gave is theirs.
		c := *opts.HTTPClient
		c.Transport = tel.Transport(c.Transport)
		opts.HTTPClient = &c
	}
	// Read the file first: a mistake in it should stop start-up before
	// anything is declared.
	var fromFile []contract.Webhook
	if opts.WebhooksFile != "" {
		if fromFile, err = loadFile(opts.WebhooksFile, opts.AllowPrivate); err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
	}
	seal, err := newSealer(opts.EncryptionKey)
	if err != nil {
		return nil, err
	}
	s := &Service{}
	defer func() {
		if err != nil {
			_ = s.parts.Stop(context.Background())
			err = fmt.Errorf("notifications: %w", err)
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	pub, err := messaging.NewPublisher(nc, messaging.WithPublishTelemetry(tel))
	if err != nil {
		return nil, err
	}
	if s.tasks, err = messaging.EnsureStream(ctx, js, opts.Replication.Stream(TasksStreamConfig())); err != nil {
		return nil, err
	}
	kv, err := messaging.EnsureKeyValue(ctx, js, opts.Replication.KeyValue(jetstream.KeyValueConfig{
		Bucket:      contract.Bucket,
		Description: "Webhooks by id, their secrets sealed with the webhook encryption key.",
		Storage:     jetstream.FileStorage,
		History:     1,
	}))
	if err != nil {
		return nil, err
	}
	delivered, err := openDelivered(ctx, js, opts.Cache.Backend, opts.Replication)
	if err != nil {
		return nil, err
	}
	for _, h := range fromFile {
		if _, err = putWebhook(ctx, kv, seal, h); err != nil {
			return nil, err
		}
	}
	if len(fromFile) > 0 {
		logger.Info("webhooks file loaded", slog.String("file", opts.WebhooksFile), slog.Int("webhooks", len(fromFile)))
	}

	reg := newRegistry()
	h := &hooks{kv: kv, seal: seal, reg: reg, tasks: s.tasks, allowPrivate: opts.AllowPrivate}
	d := &deliverer{reg: reg, client: opts.HTTPClient, delivered: delivered, now: time.Now, logger: logger, metrics: newWebhookMetrics(tel)}
	h.disp = &dispatcher{
		js:  js,
		reg: reg,
		cfg: messaging.ConsumerConfig{
			Workers:        opts.Workers,
			MaxDeliver:     opts.MaxDeliver,
			RetryBase:      opts.RetryBase,
			RetryMax:       opts.RetryMax,
			HandlerTimeout: opts.DeliveryTimeout + 10*time.Second,
			Telemetry:      tel,
			Replication:    opts.Replication,
		},
		handler:     d.deliver,
		stopTimeout: 5 * time.Second,
		logger:      logger,
		consumers:   map[string]*messaging.Consumer{},
	}
	s.parts.Push("deliveries", h.disp.stop)

	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone, err := watch(wctx, kv, seal, reg, func(id string) {
		sctx, cancel := context.WithTimeout(wctx, 10*time.Second)
		defer cancel()
		if err := h.disp.sync(sctx, id); err != nil {
			logger.Error("webhook changed, but its deliveries could not follow", slog.String("webhook_id", id), slog.String("error", err.Error()))
		}
	}, func(err error) { logger.Error("webhooks bucket", slog.String("error", err.Error())) })
	if err != nil {
		stopWatch()
		return nil, err
	}
	s.parts.Push("webhooks watch", func(ctx context.Context) error {
		stopWatch()
		select {
		case <-watchDone:
		case <-ctx.Done():
		}
		return nil
	})

	if s.fanOut, err = consumeEvents(ctx, js, reg, pub, logger, tel, opts.Replication); err != nil {
		return nil, err
	}
	s.parts.Push("fan-out", func(ctx context.Context) error { return stopAll(ctx, s.fanOut) })

	if s.svc, err = messaging.NewService(nc, messaging.ServiceConfig{
		Name:        contract.ServiceName,
		Version:     contract.Version,
		Description: "Notifications: signed HTTP webhooks for users and orders events",
		Logger:      opts.Logger, // NewService adds service=<name>
		Telemetry:   tel,
		Limits:      opts.Limits,
		Middleware:  []messaging.Middleware{messaging.MapErrors(errorRules()...)},
		Consumers:   s.fanOut,
	}, routes(h, deadLetters{dl: messaging.NewDeadLetters(js, ""), pub: pub, reg: reg})...); err != nil {
		return nil, err
	}
	s.parts.Push("endpoints", s.svc.Stop)
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
	if err := messaging.StreamReady(ctx, s.tasks); err != nil {
		return fmt.Errorf("stream %s: %w", contract.Stream, err)
	}
	return nil
}

// Stop stops taking requests, events and deliveries, and waits for those
// in flight (bounded by ctx; deliveries still running then are cancelled
// and redelivered later). Calling it again is harmless.
func (s *Service) Stop(ctx context.Context) error { return s.parts.Stop(ctx) }
