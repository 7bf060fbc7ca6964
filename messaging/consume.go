package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/wire"
)

// Defaults of ConsumerConfig.
const (
	DefaultAckWait            = 30 * time.Second
	DefaultMaxDeliver         = 5
	DefaultConsumerWorkers    = 8
	DefaultHandlerTimeout     = time.Minute
	DefaultRetryBase          = time.Second
	DefaultRetryMax           = time.Minute
	DefaultDeadLetterStream   = "DEADLETTER"
	DeadLetterSubjectPrefix   = "deadletter."
	defaultPullExpiry         = 5 * time.Second
	defaultRecreateBackoffMax = 5 * time.Second
)

// Headers of a dead-lettered message, beside the original message's own.
const (
	HeaderDeadLetterSubject    = "Switchboard-Dead-Letter-Subject"
	HeaderDeadLetterStream     = "Switchboard-Dead-Letter-Stream"
	HeaderDeadLetterConsumer   = "Switchboard-Dead-Letter-Consumer"
	HeaderDeadLetterSequence   = "Switchboard-Dead-Letter-Sequence"
	HeaderDeadLetterDeliveries = "Switchboard-Dead-Letter-Deliveries"
	HeaderDeadLetterReason     = "Switchboard-Dead-Letter-Reason"
	HeaderDeadLetterError      = "Switchboard-Dead-Letter-Error"
)

// Reasons a message is dead-lettered, in HeaderDeadLetterReason.
const (
	ReasonPermanent     = "permanent"
	ReasonMaxDeliveries = "max-deliveries"
	ReasonUndecodable   = "undecodable"
)

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as a failure that no retry can fix: the consumer
// dead-letters the message and terminates it instead of redelivering it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// retryAfterError asks for the next delivery no sooner than after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (r retryAfterError) Error() string { return r.err.Error() }
func (r retryAfterError) Unwrap() error { return r.err }

// RetryAfter marks err as transient and asks for the next attempt no sooner
// than after (an HTTP Retry-After, say). The delay used is the larger of
// after and the backoff, capped at RetryMax.
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return retryAfterError{err: err, after: after}
}

// Delivery describes one delivery of a stream message to a consumer.
type Delivery struct {
	Subject   string
	Stream    string
	Consumer  string
	StreamSeq uint64
	// Delivered counts deliveries of this message, 1 the first time.
	Delivered uint64
	// EventID is the Switchboard-Event-Id header, else Nats-Msg-Id, else
	// "<stream>:<sequence>": an id to de-duplicate side effects with.
	EventID   string
	EventType string
	Time      time.Time
}

// Event is a decoded stream message with its delivery.
type Event[T any] struct {
	Delivery
	Header nats.Header
	Data   T
	Raw    []byte
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery a consumer handler is working on.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// ConsumerConfig describes a durable pull consumer and how to run it.
type ConsumerConfig struct {
	Stream      string // required
	Durable     string // required: the consumer's name
	Description string
	// FilterSubjects narrows the stream; empty means all of it.
	FilterSubjects []string
	// DeliverPolicy for a new consumer (default: all).
	DeliverPolicy jetstream.DeliverPolicy
	// AckWait is how long the server waits for an ack before redelivering;
	// running handlers extend it with in-progress acks (default 30s).
	AckWait time.Duration
	// MaxDeliver is the number of deliveries before a message is
	// dead-lettered (default 5).
	MaxDeliver int
	// Workers bounds how many handlers run at once (default 8).
	Workers int
	// HandlerTimeout bounds one handler call (default 1m).
	HandlerTimeout time.Duration
	// RetryBase and RetryMax shape the exponential backoff (with jitter)
	// of transient failures: RetryBase·2^(delivery-1), at most RetryMax.
	RetryBase, RetryMax time.Duration
	// DeadLetterStream receives what cannot be handled, on
	// deadletter.<stream>.<durable> (default "DEADLETTER").
	DeadLetterStream string
	// DoubleAck waits for the server to confirm each ack, for side
	// effects that must not repeat.
	DoubleAck bool
	// Logger; nil discards.
	Logger *slog.Logger
}

// ConsumerStats is a consumer's health, as `nats micro stats` shows it.
type ConsumerStats struct {
	Stream          string `json:"stream"`
	Consumer        string `json:"consumer"`
	Pending         uint64 `json:"pending"`
	AckPending      int    `json:"ack_pending"`
	Redelivered     int    `json:"redelivered"`
	InFlight        int    `json:"in_flight"`
	Handled         uint64 `json:"handled"`
	Retried         uint64 `json:"retried"`
	DeadLettered    uint64 `json:"dead_lettered"`
	Recreated       uint64 `json:"recreated"`
	LastError       string `json:"last_error,omitempty"`
	InfoUnavailable bool   `json:"info_unavailable,omitempty"`
}

// Consumer runs a handler over a durable pull consumer. Stop it with Stop.
type Consumer struct {
	cfg    ConsumerConfig
	js     jetstream.JetStream
	logger *slog.Logger
	handle func(context.Context, jetstream.Msg)

	mu   sync.Mutex
	cons jetstream.Consumer
	it   jetstream.MessagesContext

	// base is the parent of handler contexts; cancelling it aborts the
	// handlers still running when Stop runs out of time.
	base     context.Context
	cancel   context.CancelFunc
	stopping atomic.Bool
	stopCh   chan struct{}
	loopDone chan struct{}
	sem      chan struct{}
	inflight inflight
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
//   - another error: redelivered after an exponential backoff with jitter,
//     until MaxDeliver deliveries, then dead-lettered and terminated.
//
// A message whose payload does not decode into T is dead-lettered at once.
// Nothing is acked before its handler returned, so a process that dies
// loses nothing: the server redelivers what was not acked.
func Consume[T any](ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handler func(context.Context, Event[T]) error) (*Consumer, error) {
	c, err := newConsumer(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	c.handle = func(ctx context.Context, msg jetstream.Msg) {
		c.process(ctx, msg, func(ctx context.Context, d Delivery) error {
			ev := Event[T]{Delivery: d, Header: msg.Headers(), Raw: msg.Data()}
			if err := json.Unmarshal(msg.Data(), &ev.Data); err != nil {
				return undecodable{fmt.Errorf("decode %s into %T: %w", d.Subject, ev.Data, err)}
			}
			return handler(ctx, ev)
		})
	}
	go c.loop()
	return c, nil
}

var errNotDeclared = errors.New("consumer not declared yet")

type undecodable struct{ error }

func (u undecodable) Unwrap() error { return u.error }

func newConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Stream == "" || cfg.Durable == "" {
		return nil, fmt.Errorf("%w: consumer needs a stream and a durable name", ErrInvalidOption)
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
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultConsumerWorkers
	}
	if cfg.DeadLetterStream == "" {
		cfg.DeadLetterStream = DefaultDeadLetterStream
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		cfg:      cfg,
		js:       js,
		logger:   logger.With(slog.String("stream", cfg.Stream), slog.String("consumer", cfg.Durable)),
		stopCh:   make(chan struct{}),
		loopDone: make(chan struct{}),
		sem:      make(chan struct{}, cfg.Workers),
	}
	if _, err := EnsureStream(ctx, js, DeadLetterStreamConfig(cfg.DeadLetterStream)); err != nil {
		return nil, err
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	if err := c.declare(ctx); err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			c.cancel()
			return nil, err
		}
		// The stream belongs to another service that has not started
		// yet: keep trying in the background instead of failing.
		c.logger.Warn("stream not found yet; the consumer starts once it exists", slog.String("error", err.Error()))
	}
	return c, nil
}

// DeadLetterStreamConfig is the configuration of a dead-letter stream: file
// storage, subjects deadletter.>, kept until deleted by an operator.
func DeadLetterStreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Messages consumers could not handle, with the reason and the last error.",
		Subjects:    []string{DeadLetterSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		AllowDirect: true,
		Duplicates:  10 * time.Minute,
	}
}

// declare creates or updates the durable consumer and starts iterating.
func (c *Consumer) declare(ctx context.Context) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    c.cfg.Description,
		FilterSubjects: c.cfg.FilterSubjects,
		DeliverPolicy:  c.cfg.DeliverPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     c.cfg.MaxDeliver,
		MaxAckPending:  max(c.cfg.Workers*4, 256),
	})
	if err != nil {
		return fmt.Errorf("declare consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	// A small buffer: messages wait on the server, where other replicas
	// can take them, rather than in this process.
	// A missed heartbeat is handled inside the iterator (it resets and
	// pulls again) rather than by declaring the consumer again; with a
	// 1s heartbeat a stalled pull is noticed within about 2s.
	it, err := cons.Messages(
		jetstream.PullMaxMessages(c.cfg.Workers),
		jetstream.PullExpiry(defaultPullExpiry),
		jetstream.PullHeartbeat(time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return fmt.Errorf("consume %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	c.mu.Lock()
	c.cons, c.it = cons, it
	c.mu.Unlock()
	return nil
}

// loop takes messages while a worker is free, and recovers from a deleted
// consumer or a broken iterator by declaring the consumer again.
func (c *Consumer) loop() {
	defer close(c.loopDone)
	backoff := 100 * time.Millisecond
	for {
		select {
		case c.sem <- struct{}{}:
		case <-c.stopCh:
			return
		}
		c.mu.Lock()
		it := c.it
		c.mu.Unlock()
		var msg jetstream.Msg
		err := errNotDeclared
		if it != nil {
			msg, err = it.Next()
		}
		if err != nil {
			<-c.sem
			if c.stopping.Load() {
				return
			}
			c.lastErr.Store(err.Error())
			if it != nil {
				c.logger.Warn("consumer interrupted; declaring it again", slog.String("error", err.Error()))
				it.Stop()
			}
			for !c.stopping.Load() {
				ctx, cancel := context.WithTimeout(c.base, 5*time.Second)
				derr := c.declare(ctx)
				cancel()
				if derr == nil {
					c.recreated.Add(1)
					c.logger.Info("consumer declared again")
					backoff = 100 * time.Millisecond
					break
				}
				c.lastErr.Store(derr.Error())
				c.logger.Warn("declaring the consumer failed; retrying", slog.String("error", derr.Error()), slog.Duration("in", backoff))
				select {
				case <-time.After(backoff):
				case <-c.stopCh:
				}
				backoff = min(backoff*2, defaultRecreateBackoffMax)
			}
			continue
		}
		c.inflight.add()
		go func() {
			defer c.inflight.done()
			defer func() { <-c.sem }()
			c.handle(c.base, msg)
		}()
	}
}

// process runs one delivery through fn and settles the message by the
// outcome.
func (c *Consumer) process(base context.Context, msg jetstream.Msg, fn func(context.Context, Delivery) error) {
	meta, err := msg.Metadata()
	if err != nil {
		c.logger.Error("message without metadata; terminating it", slog.String("subject", msg.Subject()), slog.String("error", err.Error()))
		_ = msg.Term()
		return
	}
	d := Delivery{
		Subject:   msg.Subject(),
		Stream:    meta.Stream,
		Consumer:  meta.Consumer,
		StreamSeq: meta.Sequence.Stream,
		Delivered: meta.NumDelivered,
		EventType: header(msg.Headers(), wire.HeaderEventType),
		EventID:   header(msg.Headers(), wire.HeaderEventID),
		Time:      meta.Timestamp,
	}
	if d.EventID == "" {
		d.EventID = header(msg.Headers(), jetstream.MsgIDHeader)
	}
	if d.EventID == "" {
		d.EventID = fmt.Sprintf("%s:%d", d.Stream, d.StreamSeq)
	}
	lz := &lazyLogger{base: c.logger, attrs: []any{
		slog.String("subject", d.Subject),
		slog.Uint64("stream_seq", d.StreamSeq),
		slog.Uint64("delivered", d.Delivered),
		slog.String("event_id", d.EventID),
	}}
	ctx, cancel := context.WithTimeout(base, c.cfg.HandlerTimeout)
	defer cancel()
	ctx = context.WithValue(context.WithValue(ctx, deliveryKey{}, d), loggerKey{}, lz)

	// Keep the message alive while the handler runs: one timer, re-armed
	// after each in-progress ack, instead of a ticker and a goroutine for
	// every message (most handlers finish long before the first tick).
	every := max(c.cfg.AckWait/3, 10*time.Millisecond)
	var kaMu sync.Mutex
	kaDone := false
	var keepAlive *time.Timer
	kaMu.Lock() // the callback reads keepAlive under kaMu
	keepAlive = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		kaMu.Lock()
		defer kaMu.Unlock()
		if !kaDone {
			keepAlive.Reset(every)
		}
	})
	kaMu.Unlock()
	herr := c.call(ctx, fn, d)
	kaMu.Lock()
	kaDone = true
	keepAlive.Stop()
	kaMu.Unlock()
	logger := lz.get
	switch {
	case herr == nil:
		var aerr error
		if c.cfg.DoubleAck {
			actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
			aerr = msg.DoubleAck(actx)
			acancel()
		} else {
			aerr = msg.Ack()
		}
		if aerr != nil {
			// The server redelivers it; handlers are idempotent.
			logger().Warn("ack failed", slog.String("error", aerr.Error()))
			return
		}
		c.handled.Add(1)
		if c.logger.Enabled(ctx, slog.LevelDebug) {
			logger().Debug("handled")
		}
	case base.Err() != nil:
		// Stopping: leave it for redelivery, at once.
		_ = msg.Nak()
	case IsPermanent(herr):
		c.deadLetter(msg, d, ReasonPermanent, herr, logger())
	case errors.As(herr, new(undecodable)):
		c.deadLetter(msg, d, ReasonUndecodable, herr, logger())
	case d.Delivered >= uint64(c.cfg.MaxDeliver):
		c.deadLetter(msg, d, ReasonMaxDeliveries, herr, logger())
	default:
		delay := c.backoff(d.Delivered)
		var ra retryAfterError
		if errors.As(herr, &ra) && ra.after > delay {
			delay = min(ra.after, c.cfg.RetryMax)
		}
		c.retried.Add(1)
		c.lastErr.Store(herr.Error())
		logger().Warn("handler failed; will retry", slog.String("error", herr.Error()), slog.Duration("retry_in", delay))
		_ = msg.NakWithDelay(delay)
	}
}

// call runs fn, turning a panic into a permanent failure.
func (c *Consumer) call(ctx context.Context, fn func(context.Context, Delivery) error, d Delivery) (err error) {
	defer func() {
		if v := recover(); v != nil {
			LoggerFrom(ctx).Error("consumer handler panicked", slog.String("panic", fmt.Sprint(v)))
			err = Permanent(fmt.Errorf("panic: %v", v))
		}
	}()
	return fn(ctx, d)
}

func (c *Consumer) backoff(delivered uint64) time.Duration {
	d := c.cfg.RetryBase << min(delivered-1, 30)
	if d <= 0 || d > c.cfg.RetryMax {
		d = c.cfg.RetryMax
	}
	// Full jitter in [d/2, d): spreads retries of many messages.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// deadLetter copies msg to the dead-letter stream with why it failed, then
// terminates it. If the copy is not stored, the message is redelivered
// later instead: it is never dropped.
func (c *Consumer) deadLetter(msg jetstream.Msg, d Delivery, reason string, herr error, logger *slog.Logger) {
	h := nats.Header{}
	for k, v := range msg.Headers() {
		// Expectations and the de-duplication id belonged to the
		// original publish; they would make this one fail or vanish.
		if len(k) >= 13 && k[:13] == "Nats-Expected" || k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDeadLetterSubject, d.Subject)
	h.Set(HeaderDeadLetterStream, d.Stream)
	h.Set(HeaderDeadLetterConsumer, c.cfg.Durable)
	h.Set(HeaderDeadLetterSequence, strconv.FormatUint(d.StreamSeq, 10))
	h.Set(HeaderDeadLetterDeliveries, strconv.FormatUint(d.Delivered, 10))
	h.Set(HeaderDeadLetterReason, reason)
	h.Set(HeaderDeadLetterError, headerSafe(herr.Error()))
	dl := &nats.Msg{Subject: DeadLetterSubjectPrefix + d.Stream + "." + c.cfg.Durable, Header: h, Data: msg.Data()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := fmt.Sprintf("%s:%s:%d", d.Stream, c.cfg.Durable, d.StreamSeq)
	if _, err := c.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id), jetstream.WithExpectStream(c.cfg.DeadLetterStream)); err != nil {
		logger.Error("dead-lettering failed; will retry", slog.String("error", err.Error()))
		_ = msg.NakWithDelay(c.cfg.RetryBase)
		return
	}
	c.deadLettered.Add(1)
	c.lastErr.Store(herr.Error())
	logger.Error("dead-lettered", slog.String("reason", reason), slog.String("error", herr.Error()))
	_ = msg.TermWithReason(reason + ": " + headerSafe(herr.Error()))
}

// Stop stops taking messages and waits for running handlers, bounded by
// ctx. Handlers that finish are acked; when ctx ends first, the rest see
// their contexts cancelled and their messages are left for redelivery.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		close(c.stopCh)
		c.mu.Lock()
		it := c.it
		c.mu.Unlock()
		if it != nil {
			it.Stop()
		}
		select {
		case <-c.loopDone:
		case <-ctx.Done():
		}
		if err := c.inflight.wait(ctx); err != nil {
			c.cancel()
			// Give cancelled handlers a moment to nak.
			wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.inflight.wait(wctx)
			wcancel()
			c.stopErr = fmt.Errorf("stop consumer %s: in-flight handlers: %w", c.cfg.Durable, err)
		}
		c.cancel()
	})
	return c.stopErr
}

// Name returns the durable name.
func (c *Consumer) Name() string { return c.cfg.Durable }

// Stats returns the consumer's health; the server's figures are fetched
// within ctx, and marked unavailable when they cannot be.
func (c *Consumer) Stats(ctx context.Context) ConsumerStats {
	st := ConsumerStats{
		Stream:       c.cfg.Stream,
		Consumer:     c.cfg.Durable,
		InFlight:     c.inflight.count(),
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
	info, err := cons.Info(ctx)
	if err != nil {
		st.InfoUnavailable = true
		return st
	}
	st.Pending = info.NumPending
	st.AckPending = info.NumAckPending
	st.Redelivered = info.NumRedelivered
	return st
}
