package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/telemetry"
)

// Defaults of ConsumerConfig.
const (
	DefaultAckWait         = 30 * time.Second
	DefaultMaxDeliver      = 5
	DefaultConsumerWorkers = 8
	DefaultHandlerTimeout  = time.Minute
	DefaultRetryBase       = time.Second
	DefaultRetryMax        = time.Minute
	// RetryForever as ConsumerConfig.MaxDeliver retries transient
	// failures until they succeed (a cache invalidator, say); only
	// permanent failures are dead-lettered.
	RetryForever = -1

	// A pull waits at most this long for messages. It is short so that
	// Stop never has to abandon a pull the server could still fill.
	defaultPullExpiry         = time.Second
	defaultRecreateBackoffMax = 5 * time.Second

	// With Prefetch left at 0, a consumer holds ready about this much of
	// its workers' work (by their recent handler times), between Workers
	// and maxPrefetchFactor×Workers messages beyond those being handled.
	prefetchHorizon   = 10 * time.Millisecond
	maxPrefetchFactor = 8
)

// ConsumerConfig describes a durable pull consumer and how to run it.
type ConsumerConfig struct {
	Stream      string // required
	Durable     string // required: the consumer's name
	Description string
	// FilterSubjects narrows the stream; empty means all of it.
	FilterSubjects []string
	// DeliverPolicy for a new consumer (default: all).
	DeliverPolicy jetstream.DeliverPolicy
	// HeadersOnly delivers the messages without their payloads, for
	// handlers that need only the subject and headers.
	HeadersOnly bool
	// OptStartSeq is the first stream sequence delivered, with
	// DeliverPolicy jetstream.DeliverByStartSequencePolicy.
	OptStartSeq uint64
	// AckWait is how long the server waits for an ack before redelivering;
	// the runtime extends it with in-progress acks for every message it
	// holds, queued or running (default 30s).
	AckWait time.Duration
	// MaxDeliver is the number of deliveries after which a failing
	// message is dead-lettered (default 5; RetryForever never gives up).
	// The server itself never stops redelivering: the runtime decides, so
	// a message is never dropped, even when dead-lettering fails.
	MaxDeliver int
	// Workers bounds how many handlers run at once (default 8).
	Workers int
	// Prefetch is how many messages are held ready for the next free
	// worker, beyond those being handled. Left at 0, it follows the
	// handlers' recent times: enough for about 10ms of the workers' work,
	// at least Workers and at most 8×Workers (Workers until the first
	// handlers have finished). So fast handlers are not starved by pull
	// round trips, and slow ones do not sit on messages another replica
	// could take. Set it to hold a fixed number.
	Prefetch int
	// HandlerTimeout bounds one handler call (default 1m).
	HandlerTimeout time.Duration
	// RetryBase and RetryMax shape the exponential backoff (with jitter)
	// of transient failures: RetryBase·2^(delivery-1), at most RetryMax.
	RetryBase, RetryMax time.Duration
	// DeadLetterStream receives what cannot be handled, on
	// DeadLetterSubject(Stream, Durable) (default "DEADLETTER").
	DeadLetterStream string
	// Replication is given to the dead-letter stream when this consumer
	// is the first to need it and creates it; an existing one is left as
	// it is.
	Replication Replication
	// DoubleAck waits for the server to confirm each ack, for side
	// effects that must not repeat.
	DoubleAck bool
	// Middleware wraps the handler inside the built-in logging, panic
	// recovery and timeout, first element outermost.
	Middleware []DeliveryMiddleware
	// BatchSize is the most messages one handler call of
	// [ConsumeBatches] gets (default DefaultBatchSize); Consume ignores it.
	BatchSize int
	// Logger; nil discards.
	Logger *slog.Logger
	// Telemetry counts and times the deliveries, reports the consumer's
	// lag when scraped (docs/observability.md) and, with tracing on,
	// handles each message in a span that continues the publisher's trace
	// (its traceparent header); nil does neither.
	Telemetry *telemetry.Telemetry
}

// ConsumerStats is a consumer's health, as `nats micro stats` shows it.
type ConsumerStats struct {
	Stream          string `json:"stream"`
	Consumer        string `json:"consumer"`
	Pending         uint64 `json:"pending"`
	AckPending      int    `json:"ack_pending"`
	Redelivered     int    `json:"redelivered"`
	InFlight        int    `json:"in_flight"`
	Held            int    `json:"held"` // in flight or queued for a worker: at most Workers+Prefetch
	Handled         uint64 `json:"handled"`
	Retried         uint64 `json:"retried"`
	DeadLettered    uint64 `json:"dead_lettered"`
	Recreated       uint64 `json:"recreated"`
	LastError       string `json:"last_error,omitempty"`
	InfoUnavailable bool   `json:"info_unavailable,omitempty"`
}

// Consumer runs a handler over a durable pull consumer. Stop it with Stop.
type Consumer struct {
	cfg     ConsumerConfig
	js      jetstream.JetStream
	logger  *slog.Logger
	handler DeliveryHandler  // the whole chain, decoding included
	tr      *tracing         // nil: tracing off
	m       *consumerMetrics // nil: metrics off
	// unregister removes the consumer's scrape-time metrics.
	unregister func()

	mu   sync.Mutex
	cons jetstream.Consumer

	// base is the parent of handler contexts; cancelling it aborts the
	// handlers still running when Stop runs out of time.
	base      context.Context
	cancel    context.CancelFunc
	stopping  atomic.Bool
	stopCh    chan struct{}
	fetchDone chan struct{}
	// slots counts the messages this process holds (queued or running):
	// a pull asks for no more than are free, so nothing waits unseen in a
	// client buffer while its AckWait runs out. With an adaptive Prefetch,
	// reserve of its places (fetch's own count) are kept from pulls, so
	// that the rest is Workers+prefetchFor(recent handler time).
	slots   chan struct{}
	reserve int
	// handleNanos is a moving average of handler times (adaptive only).
	handleNanos atomic.Int64
	queue       chan *heldMsg
	held        *holdings
	workers     sync.WaitGroup
	inflight    inflight
	// handBack holds what was received or interrupted while stopping: it
	// is nak'ed once no pull is open, so that it cannot come straight
	// back into this consumer's last pull.
	hbMu     sync.Mutex
	handBack []*heldMsg
	stopOnce sync.Once
	stopErr  error

	handled, retried, deadLettered, recreated atomic.Uint64
	lastErr                                   atomic.Value // string
}

// Consume declares the durable consumer (create or update) and the
// dead-letter stream, then runs handler over the messages, up to Workers at
// a time. The outcome of a handler decides what happens to its message:
//
//   - nil: acked (double-acked with DoubleAck);
//   - an error marked [Permanent]: dead-lettered, then terminated;
//   - another error: redelivered after an exponential backoff with jitter
//     (or the [RetryAfter] asked for), until MaxDeliver deliveries, then
//     dead-lettered and terminated.
//
// A message whose payload does not decode into T is dead-lettered at once.
// Nothing is acked before its handler returned, and nothing is terminated
// before its dead letter is stored, so a process that dies, or a
// dead-letter stream that refuses, loses nothing: the server redelivers.
func Consume[T any](ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handler func(context.Context, Event[T]) error) (*Consumer, error) {
	return ConsumeDeliveries(ctx, js, cfg, func(ctx context.Context, d *Delivery) error {
		ev := Event[T]{Delivery: *d}
		if err := jsonv1.Unmarshal(d.Payload, &ev.Data); err != nil { // encoding/json's decoding and errors, faster
			return undecodable{fmt.Errorf("decode %s into %T: %w", d.Subject, ev.Data, err)}
		}
		return handler(ctx, ev)
	})
}

// ConsumeDeliveries is Consume for a handler of raw deliveries.
func ConsumeDeliveries(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handler DeliveryHandler) (*Consumer, error) {
	c, err := newConsumer(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	mw := append([]DeliveryMiddleware{logDeliveries(c.logger), recoverDeliveries(), timeoutDeliveries(c.cfg.HandlerTimeout)}, c.cfg.Middleware...)
	c.handler = chainDeliveries(handler, mw...)
	for range c.cfg.Workers {
		c.workers.Add(1)
		go c.work()
	}
	go c.fetch()
	return c, nil
}

var errNotDeclared = errors.New("consumer not declared yet")

func newConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Stream == "" || cfg.Durable == "" {
		return nil, fmt.Errorf("%w: consumer needs a stream and a durable name", ErrInvalidOption)
	}
	if cfg.MaxDeliver < RetryForever || cfg.Workers < 0 || cfg.Prefetch < 0 {
		return nil, fmt.Errorf("%w: consumer %s: max deliver %d, workers %d, prefetch %d", ErrInvalidOption, cfg.Durable, cfg.MaxDeliver, cfg.Workers, cfg.Prefetch)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AckWait, DefaultAckWait)
	def(&cfg.HandlerTimeout, DefaultHandlerTimeout)
	def(&cfg.RetryBase, DefaultRetryBase)
	def(&cfg.RetryMax, DefaultRetryMax)
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultConsumerWorkers
	}
	capacity := cfg.Workers + cfg.Prefetch
	if cfg.Prefetch == 0 { // adaptive
		capacity = cfg.Workers + maxPrefetchFactor*cfg.Workers
	}
	if cfg.DeadLetterStream == "" {
		cfg.DeadLetterStream = DefaultDeadLetterStream
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		cfg:       cfg,
		js:        js,
		logger:    logger.With(slog.String("stream", cfg.Stream), slog.String("consumer", cfg.Durable)),
		stopCh:    make(chan struct{}),
		fetchDone: make(chan struct{}),
		slots:     make(chan struct{}, capacity),
		queue:     make(chan *heldMsg, capacity),
		held:      newHoldings(cfg.AckWait),
		tr:        newTracing(cfg.Telemetry),
		m:         newConsumerMetrics(cfg.Telemetry, cfg.Stream, cfg.Durable),
	}
	if err := createStreamIfMissing(ctx, js, cfg.Replication.Stream(DeadLetterStreamConfig(cfg.DeadLetterStream))); err != nil {
		return nil, err
	}
	// Until handlers have been timed, assume they take the horizon:
	// Prefetch starts at Workers.
	c.handleNanos.Store(int64(prefetchHorizon))
	c.base, c.cancel = context.WithCancel(context.Background())
	// Until Stop is over: what it hands back is kept alive until nak'ed.
	go c.held.keepAlive(c.base)
	if err := declaringErr(ctx, c.declare); err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			c.cancel()
			return nil, err
		}
		// The stream belongs to another service that has not started
		// yet: keep trying in the background instead of failing.
		c.logger.Warn("stream not found yet; the consumer starts once it exists", slog.String("error", err.Error()))
	}
	c.unregister = func() {}
	if c.m != nil {
		c.unregister = cfg.Telemetry.Register(newConsumerCollector(c))
	}
	return c, nil
}

// declare creates or updates the durable consumer.
func (c *Consumer) declare(ctx context.Context) error {
	capacity := cap(c.slots)
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    c.cfg.Description,
		FilterSubjects: c.cfg.FilterSubjects,
		DeliverPolicy:  c.cfg.DeliverPolicy,
		HeadersOnly:    c.cfg.HeadersOnly,
		OptStartSeq:    c.cfg.OptStartSeq,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		// The server never gives up on a message: if it did, a message
		// nak'ed on its last delivery (its dead letter refused, or its
		// handler cancelled by a shutdown) would be dropped unseen.
		// The runtime counts deliveries and dead-letters instead.
		MaxDeliver: -1,
		// Room for many replicas' slots; each process holds at most
		// Workers+Prefetch (Workers+8×Workers when adaptive).
		MaxAckPending: max(capacity*16, 1000),
	})
	if err != nil {
		return fmt.Errorf("declare consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	return nil
}

// heldMsg is a message this process holds: queued for a worker or being
// handled. It is kept alive (holdings) from the moment it arrives until it
// is released, just before it is settled.
type heldMsg struct {
	msg jetstream.Msg
	hs  *holdings
	// Under hs.mu: the last sign of life sent, and the ring's links (nil
	// once released).
	last       time.Time
	prev, next *heldMsg
}

// fetch pulls messages while slots are free and queues them for the
// workers. A pull never asks for more than the free slots, and every
// message it brings is kept alive (holdings) at once, so no message waits
// for a worker past its AckWait.
func (c *Consumer) fetch() {
	defer close(c.fetchDone)
	defer close(c.queue)
	backoff := 100 * time.Millisecond
	failures := 0
	for !c.stopping.Load() {
		c.fitReserve()
		// Wait for a free slot, then take more (takeSlots).
		select {
		case c.slots <- struct{}{}:
		case <-c.stopCh:
			return
		}
		if c.reserve < c.wantReserve() {
			// Handlers got slower: the place is kept from pulls.
			c.reserve++
			continue
		}
		n, ok := c.takeSlots()
		if !ok {
			return
		}
		c.mu.Lock()
		cons := c.cons
		c.mu.Unlock()
		err := errNotDeclared
		got := 0
		if cons != nil {
			var batch jetstream.MessageBatch
			batch, err = cons.Fetch(n, jetstream.FetchMaxWait(defaultPullExpiry))
			if err == nil {
				for msg := range batch.Messages() {
					got++
					c.queue <- c.held.hold(msg)
				}
				err = batch.Error()
			}
		}
		for range n - got {
			<-c.slots
		}
		if err == nil {
			failures = 0
			backoff = 100 * time.Millisecond
			continue
		}
		if c.stopping.Load() {
			return
		}
		c.lastErr.Store(err.Error())
		failures++
		// A deleted consumer, a stream not there yet, or pulls failing
		// over and over: declare the consumer again. Otherwise (a pull
		// lost in a reconnect, say) just pull again.
		if cons == nil || failures >= 3 || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			if cons != nil {
				c.logger.Warn("consumer interrupted; declaring it again", slog.String("error", err.Error()))
			}
			ctx, cancel := context.WithTimeout(c.base, 5*time.Second)
			derr := c.declare(ctx)
			cancel()
			if derr == nil {
				failures = 0
				if cons != nil {
					c.recreated.Add(1)
					c.logger.Info("consumer declared again")
				}
				backoff = 100 * time.Millisecond
				continue
			}
			c.lastErr.Store(derr.Error())
			c.logger.Warn("declaring the consumer failed; retrying", slog.String("error", derr.Error()), slog.Duration("in", backoff))
		}
		select {
		case <-time.After(backoff):
		case <-c.stopCh:
			return
		}
		backoff = min(backoff*2, defaultRecreateBackoffMax)
	}
}

// takeSlots takes the free slots for the next pull, after the first one
// it holds already. While messages are still queued for the workers it
// waits until at least half of the slots are free, so that a busy
// consumer pulls many messages at a time instead of one per freed slot
// (each pull is a round trip and a subscription); once the queue is
// empty it pulls into whatever is free, so no worker waits for the
// threshold. It reports false, with its slots given back, on Stop.
func (c *Consumer) takeSlots() (int, bool) {
	n, want := 1, max((cap(c.slots)-c.reserve)/2, 1)
	for n < cap(c.slots) {
		select {
		case c.slots <- struct{}{}:
			n++
			continue
		default:
		}
		if n >= want || len(c.queue) == 0 {
			break
		}
		select {
		case c.slots <- struct{}{}:
			n++
		case <-c.stopCh:
			for range n {
				<-c.slots
			}
			return 0, false
		}
	}
	return n, true
}

// prefetchFor is how many messages an adaptive consumer holds ready
// beyond its workers' when a handler takes avg: about prefetchHorizon of
// the workers' work, at least workers and at most maxPrefetchFactor×workers.
func prefetchFor(workers int, avg time.Duration) int {
	n := int64(workers) * maxPrefetchFactor
	if avg > 0 {
		n = min(n, int64(workers)*int64(prefetchHorizon)/int64(avg))
	}
	return max(int(n), workers)
}

// adaptive reports whether Prefetch follows the handlers' times (it was
// left at 0).
func (c *Consumer) adaptive() bool { return c.cfg.Prefetch == 0 }

// wantReserve is how many of the slots' places to keep from pulls: none
// with a fixed Prefetch.
func (c *Consumer) wantReserve() int {
	if !c.adaptive() {
		return 0
	}
	return cap(c.slots) - c.cfg.Workers - prefetchFor(c.cfg.Workers, time.Duration(c.handleNanos.Load()))
}

// fitReserve gives back the reserved places beyond what is wanted now
// (handlers got faster). The reserve's tokens are in slots, so taking
// them out never blocks. Only fetch calls it.
func (c *Consumer) fitReserve() {
	for want := c.wantReserve(); c.reserve > want; c.reserve-- {
		<-c.slots
	}
}

// timed adds a handler's time d to the moving average (1/16 weight);
// concurrent updates may lose one, which an average can afford.
func (c *Consumer) timed(d time.Duration) {
	old := c.handleNanos.Load()
	c.handleNanos.Store(old + (int64(d)-old)/16)
}

// work handles queued messages until the queue is closed. Once stopping,
// it hands what it has not started back to the server at once, for
// another replica to take.
func (c *Consumer) work() {
	defer c.workers.Done()
	for h := range c.queue {
		if c.stopping.Load() {
			c.giveBack(h)
		} else {
			c.inflight.add()
			c.process(h)
			c.inflight.done()
		}
		<-c.slots
	}
}

// process runs one message through the handler chain and settles it.
func (c *Consumer) process(h *heldMsg) {
	d, err := newDelivery(h.msg)
	if err != nil {
		h.release()
		c.logger.Error("message without metadata; terminating it", slog.String("subject", h.msg.Subject()), slog.String("error", err.Error()))
		_ = h.msg.Term()
		return
	}
	// The chain's logging puts d into the context (deliveryScope).
	ctx := c.base
	var span trace.Span
	if c.tr != nil {
		ctx, span = c.startSpan(ctx, d)
		defer span.End()
	}
	start := time.Now()
	herr := c.handler(ctx, d)
	if adaptive := c.adaptive(); adaptive || c.m != nil {
		took := time.Since(start)
		if adaptive {
			c.timed(took)
		}
		if c.m != nil {
			redelivered := 0
			if d.Delivered > 1 {
				redelivered = 1
			}
			c.m.handled(1, redelivered, took)
		}
	}
	if span != nil && herr != nil {
		span.SetStatus(codes.Error, herr.Error())
	}
	if herr != nil && c.base.Err() != nil {
		// Cut short by Stop: not a failure of the message.
		c.giveBack(h)
		return
	}
	h.release()
	c.settle(ctx, h.msg, d, herr)
}

// startSpan starts the consumer span of d, a child of the publisher's span
// when the message carries a traceparent.
func (c *Consumer) startSpan(ctx context.Context, d *Delivery) (context.Context, trace.Span) {
	return c.tr.tracer.Start(c.tr.extract(ctx, d.Header), "process "+c.cfg.Durable, trace.WithSpanKind(trace.SpanKindConsumer),
		spanAttrs(deliveryAttrs(d, c.cfg.Durable)...))
}

// deliveryAttrs describe d in a span.
func deliveryAttrs(d *Delivery, durable string) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(d.Subject), semconv.MessagingConsumerGroupName(durable),
		semconv.MessagingMessageID(d.EventID),
		attribute.String("messaging.nats.stream", d.Stream),
		attribute.Int64("messaging.nats.stream_sequence", int64(d.StreamSeq)),
		attribute.Int64("messaging.nats.delivered", int64(d.Delivered)),
	}
}

// giveBack keeps h for the nak that Stop sends once the last pull is over.
func (c *Consumer) giveBack(h *heldMsg) {
	c.hbMu.Lock()
	c.handBack = append(c.handBack, h)
	c.hbMu.Unlock()
}

// settle acks, retries or dead-letters msg by the handler's outcome. Its
// records carry the trace of ctx, the delivery's.
func (c *Consumer) settle(ctx context.Context, msg jetstream.Msg, d *Delivery, herr error) {
	log := func() *slog.Logger {
		return c.logger.With(append([]any{slog.String("subject", d.Subject), slog.Uint64("stream_seq", d.StreamSeq),
			slog.Uint64("delivered", d.Delivered), slog.String("event_id", d.EventID)}, traceAttrs(trace.SpanContextFromContext(ctx))...)...)
	}
	switch {
	case herr == nil:
		var aerr error
		if c.cfg.DoubleAck {
			actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			aerr = msg.DoubleAck(actx)
			cancel()
		} else {
			aerr = msg.Ack()
		}
		if aerr != nil {
			// The server redelivers it; handlers are idempotent.
			log().Warn("ack failed", slog.String("error", aerr.Error()))
			return
		}
		c.handled.Add(1)
		if c.m != nil {
			c.m.acks.Inc()
		}
	case IsPermanent(herr):
		c.deadLetter(msg, d, ReasonPermanent, herr, log())
	case errors.As(herr, new(undecodable)):
		c.deadLetter(msg, d, ReasonUndecodable, herr, log())
	case c.cfg.MaxDeliver != RetryForever && d.Delivered >= uint64(c.cfg.MaxDeliver):
		c.deadLetter(msg, d, ReasonMaxDeliveries, herr, log())
	default:
		delay := backoff(c.cfg.RetryBase, c.cfg.RetryMax, d.Delivered)
		var ra retryAfterError
		if errors.As(herr, &ra) && ra.after > delay {
			delay = min(ra.after, c.cfg.RetryMax)
		}
		c.retried.Add(1)
		if c.m != nil {
			c.m.retries.Inc()
		}
		c.lastErr.Store(herr.Error())
		log().Warn("handler failed; will retry", slog.String("error", herr.Error()), slog.Duration("retry_in", delay))
		_ = msg.NakWithDelay(delay)
	}
}

// deadLetter stores msg's dead letter, then terminates it. If the dead
// letter is not stored, the message is redelivered later instead (the
// server never stops redelivering): it is never dropped.
func (c *Consumer) deadLetter(msg jetstream.Msg, d *Delivery, reason string, herr error, logger *slog.Logger) {
	if err := c.storeDeadLetter(d, reason, herr, logger); err != nil {
		_ = msg.NakWithDelay(c.cfg.RetryBase)
		return
	}
	_ = msg.TermWithReason(reason + ": " + headerSafe(herr.Error()))
}

// storeDeadLetter publishes d's dead letter and counts it.
func (c *Consumer) storeDeadLetter(d *Delivery, reason string, herr error, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dl := deadLetterMsg(d, c.cfg.Durable, reason, herr)
	// One dead letter per message and consumer, whichever replica or
	// delivery writes it.
	id := fmt.Sprintf("%s:%s:%d", d.Stream, c.cfg.Durable, d.StreamSeq)
	if _, err := c.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id), jetstream.WithExpectStream(c.cfg.DeadLetterStream)); err != nil {
		c.lastErr.Store("dead-lettering failed: " + err.Error())
		logger.Error("dead-lettering failed; will retry", slog.String("error", err.Error()))
		return err
	}
	c.deadLettered.Add(1)
	if c.m != nil {
		c.m.deadLetters.WithLabelValues(c.m.stream, c.m.consumer, reason).Inc()
	}
	c.lastErr.Store(herr.Error())
	logger.Error("dead-lettered", slog.String("reason", reason), slog.String("error", herr.Error()))
	return nil
}

// Stop stops taking messages and waits for running handlers, bounded by
// ctx. Handlers that finish are acked; messages held but not started are
// handed back at once; when ctx ends first, the handlers still running see
// their contexts cancelled and their messages are left for redelivery.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		close(c.stopCh)
		done := make(chan struct{})
		go func() {
			<-c.fetchDone
			c.workers.Wait()
			// No pull is open now: what goes back goes to the server,
			// for the next consumer, at once.
			c.hbMu.Lock()
			for _, h := range c.handBack {
				h.release()
				_ = h.msg.Nak()
			}
			c.handBack = nil
			c.hbMu.Unlock()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.cancel()
			// Give cancelled handlers a moment to return, and their
			// messages to go back.
			select {
			case <-done:
			case <-time.After(time.Second):
			}
			c.stopErr = fmt.Errorf("stop consumer %s: in-flight handlers: %w", c.cfg.Durable, ctx.Err())
		}
		c.cancel()
		c.unregister()
	})
	return c.stopErr
}

// Name returns the durable name.
func (c *Consumer) Name() string { return c.cfg.Durable }

// DeadLetterQuery selects this consumer's dead letters.
func (c *Consumer) DeadLetterQuery() DeadLetterQuery {
	return DeadLetterQuery{Stream: c.cfg.Stream, Consumer: c.cfg.Durable}
}

// AckFloor returns the stream sequence up to which the server has every
// message of this consumer acknowledged.
func (c *Consumer) AckFloor(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	cons := c.cons
	c.mu.Unlock()
	if cons == nil {
		return 0, errNotDeclared
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.AckFloor.Stream, nil
}

// Stats returns the consumer's health; the server's figures are fetched
// within ctx, and marked unavailable when they cannot be.
func (c *Consumer) Stats(ctx context.Context) ConsumerStats {
	st := ConsumerStats{
		Stream:       c.cfg.Stream,
		Consumer:     c.cfg.Durable,
		InFlight:     c.inflight.count(),
		Held:         c.held.count(),
		Handled:      c.handled.Load(),
		Retried:      c.retried.Load(),
		DeadLettered: c.deadLettered.Load(),
		Recreated:    c.recreated.Load(),
	}
	if s, ok := c.lastErr.Load().(string); ok {
		st.LastError = s
	}
	c.mu.Lock()
	cons := c.cons
	c.mu.Unlock()
	if cons == nil {
		st.InfoUnavailable = true
		return st
	}
	st.ReadBacklog(ctx, cons)
	return st
}

// ReadBacklog sets st's Pending, AckPending and Redelivered from the
// server's view of cons, or InfoUnavailable when it cannot be read within
// ctx.
func (st *ConsumerStats) ReadBacklog(ctx context.Context, cons jetstream.Consumer) {
	info, err := cons.Info(ctx)
	if err != nil {
		st.InfoUnavailable = true
		return
	}
	st.Pending, st.AckPending, st.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
}

// holdings are the messages a consumer holds, queued or being handled,
// kept alive by one ticker for all of them: a tick sends an in-progress
// ack for each message that has had no sign of life (its arrival or the
// last in-progress ack) for a third of AckWait. So a message is never
// silent for more than half its AckWait, and holding one costs a link in a
// list, not a timer of its own (most are settled long before the first
// tick that is due for them).
type holdings struct {
	every time.Duration // a message is due after this long without a sign of life
	mu    sync.Mutex
	ring  heldMsg // sentinel of the ring of held messages
	n     int     // how many are in the ring
	due   []*heldMsg
}

func newHoldings(ackWait time.Duration) *holdings {
	h := &holdings{every: max(ackWait/3, 10*time.Millisecond)}
	h.ring.prev, h.ring.next = &h.ring, &h.ring
	return h
}

// hold starts holding msg.
func (hs *holdings) hold(msg jetstream.Msg) *heldMsg {
	h := &heldMsg{msg: msg, hs: hs}
	now := time.Now()
	hs.mu.Lock()
	h.last = now
	h.prev, h.next = hs.ring.prev, &hs.ring
	hs.ring.prev.next = h
	hs.ring.prev = h
	hs.n++
	hs.mu.Unlock()
	return h
}

// count returns how many messages are held now.
func (hs *holdings) count() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.n
}

// release stops keeping h alive; a second call does nothing.
func (h *heldMsg) release() {
	hs := h.hs
	hs.mu.Lock()
	if h.next != nil {
		h.prev.next, h.next.prev = h.next, h.prev
		h.prev, h.next = nil, nil
		hs.n--
	}
	hs.mu.Unlock()
}

// keepAlive ticks every half of hs.every until ctx ends, sending the
// in-progress acks that are due.
func (hs *holdings) keepAlive(ctx context.Context) {
	t := time.NewTicker(hs.every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			hs.tick(now)
		}
	}
}

// tick sends an in-progress ack for each message due at now. The acks go
// out after the lock is let go, so a handler settling its message never
// waits for them; one that was settled meanwhile refuses it (nats.go knows
// it was acked) or the server ignores it.
func (hs *holdings) tick(now time.Time) {
	hs.mu.Lock()
	due := hs.due[:0]
	for h := hs.ring.next; h != &hs.ring; h = h.next {
		if now.Sub(h.last) >= hs.every {
			h.last = now
			due = append(due, h)
		}
	}
	hs.due = due
	hs.mu.Unlock()
	for i, h := range due {
		_ = h.msg.InProgress()
		due[i] = nil
	}
}
