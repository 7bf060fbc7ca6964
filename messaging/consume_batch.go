package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBatchSize is ConsumerConfig.BatchSize's default.
const DefaultBatchSize = 100

// BatchHandler handles deliveries in stream order, all or nothing: its
// error decides what happens to every one of them (see [ConsumeBatches]).
type BatchHandler func(ctx context.Context, batch []*Delivery) error

// ConsumeBatches is Consume for handlers that work on many messages at
// once, in stream order: a projection that writes a batch in one database
// transaction, say. One worker hands batches of up to BatchSize messages to
// handler, in the order the server delivered them, while the next batch is
// fetched. A batch is acked only after handler returned nil for it.
//
// Order is kept when something fails: the messages behind a failing one
// wait for it, so a handler that stores the last sequence it applied never
// sees a later message before an earlier one.
//
//   - a transient error: the same batch is retried in place, after the
//     backoff of Consume (RetryBase·2^(attempt-1), at most RetryMax, or the
//     [RetryAfter] asked for), until MaxDeliver attempts; RetryForever
//     retries until it succeeds, an outage of the handler's database, say;
//   - a [Permanent] error, or MaxDeliver attempts used up: the batch is
//     split in halves, handled in order, until the message that fails
//     alone is found; that one is dead-lettered, as Consume does, and the
//     others are handled. A poison message is never skipped silently, and
//     never holds the stream up for longer than its own retries.
//
// Workers must be 0 or 1 and Middleware empty: the handler sees batches,
// not deliveries. Logging, panic recovery (a panic is a permanent failure)
// and HandlerTimeout (per call) apply as for Consume. Stop hands back what
// was not handled, and a batch cut short by Stop is not acked.
func ConsumeBatches(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handler BatchHandler) (*Consumer, error) {
	switch {
	case cfg.Workers > 1:
		return nil, fmt.Errorf("%w: consumer %s: batches are handled by one worker, in order; workers %d", ErrInvalidOption, cfg.Durable, cfg.Workers)
	case cfg.BatchSize < 0:
		return nil, fmt.Errorf("%w: consumer %s: batch size %d", ErrInvalidOption, cfg.Durable, cfg.BatchSize)
	case len(cfg.Middleware) > 0:
		return nil, fmt.Errorf("%w: consumer %s: delivery middleware does not apply to batches", ErrInvalidOption, cfg.Durable)
	}
	size := cfg.BatchSize
	if size == 0 {
		size = DefaultBatchSize
	}
	// The runtime holds Workers+Prefetch messages: one batch being
	// handled, and by default the next one fetched meanwhile.
	cfg.Workers = size
	if cfg.Prefetch == 0 {
		cfg.Prefetch = size
	}
	c, err := newConsumer(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	b := &batcher{c: c, handler: handler, size: size}
	c.workers.Add(1)
	go b.work()
	go c.fetch()
	return c, nil
}

// batcher is the one worker of a batch consumer.
type batcher struct {
	c       *Consumer
	handler BatchHandler
	size    int
}

// work takes batches off the queue until it is closed: the first message
// waited for, then whatever else is queued, up to size.
func (b *batcher) work() {
	c := b.c
	defer c.workers.Done()
	for h := range c.queue {
		held := []*heldMsg{h}
	more:
		for len(held) < b.size {
			select {
			case h, ok := <-c.queue:
				if !ok {
					break more
				}
				held = append(held, h)
			default:
				break more
			}
		}
		if c.stopping.Load() {
			for _, h := range held {
				c.giveBack(h)
			}
		} else {
			b.handle(held)
		}
		for range held {
			<-c.slots
		}
	}
}

// handle reads the deliveries of held and runs them.
func (b *batcher) handle(held []*heldMsg) {
	c := b.c
	hs := make([]*heldMsg, 0, len(held))
	ds := make([]*Delivery, 0, len(held))
	for _, h := range held {
		d, err := newDelivery(h.msg)
		if err != nil {
			h.release()
			c.logger.Error("message without metadata; terminating it", slog.String("subject", h.msg.Subject()), slog.String("error", err.Error()))
			_ = h.msg.Term()
			continue
		}
		hs = append(hs, h)
		ds = append(ds, d)
	}
	if len(hs) == 0 {
		return
	}
	for range hs {
		c.inflight.add()
	}
	defer func() {
		for range hs {
			c.inflight.done()
		}
	}()
	b.run(hs, ds, false)
}

// run handles one batch until it is acked, dead-lettered or handed back.
// exhausted says the batch is half of one that used up its attempts: it
// gets one more, then is split again.
func (b *batcher) run(hs []*heldMsg, ds []*Delivery, exhausted bool) {
	c := b.c
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			for _, d := range ds {
				d.Delivered++
			}
		}
		ctx, span := b.startSpan(ds)
		err := b.call(ctx, ds)
		if span != nil {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
		if err == nil {
			for i, h := range hs {
				h.release()
				c.settle(ctx, h.msg, ds[i], nil)
			}
			return
		}
		if c.base.Err() != nil {
			// Cut short by Stop: not a failure of the messages.
			b.giveBack(hs)
			return
		}
		var reason string
		switch {
		case IsPermanent(err):
			reason = ReasonPermanent
		case errors.As(err, new(undecodable)):
			reason = ReasonUndecodable
		case exhausted || c.cfg.MaxDeliver != RetryForever && attempt >= c.cfg.MaxDeliver:
			reason = ReasonMaxDeliveries
		}
		if reason != "" && len(hs) > 1 {
			// Find the message that fails, keeping the order.
			mid := len(hs) / 2
			b.run(hs[:mid], ds[:mid], reason == ReasonMaxDeliveries)
			if c.base.Err() != nil {
				b.giveBack(hs[mid:])
				return
			}
			b.run(hs[mid:], ds[mid:], reason == ReasonMaxDeliveries)
			return
		}
		if reason != "" {
			b.deadLetter(hs[0], ds[0], reason, err)
			return
		}
		delay := backoff(c.cfg.RetryBase, c.cfg.RetryMax, uint64(attempt))
		var ra retryAfterError
		if errors.As(err, &ra) && ra.after > delay {
			delay = min(ra.after, c.cfg.RetryMax)
		}
		c.retried.Add(uint64(len(hs)))
		if c.m != nil {
			c.m.retries.Add(float64(len(hs)))
		}
		c.lastErr.Store(err.Error())
		c.logger.Warn("batch failed; will retry it", slog.Uint64("first_seq", ds[0].StreamSeq), slog.Uint64("last_seq", ds[len(ds)-1].StreamSeq),
			slog.Int("batch", len(ds)), slog.Int("attempt", attempt), slog.String("error", err.Error()), slog.Duration("retry_in", delay))
		if !b.wait(delay) {
			b.giveBack(hs)
			return
		}
	}
}

// startSpan starts the span of one attempt at ds, when tracing is on: a
// batch holds messages of many traces, so the span is a root of its own
// with a link to each message's trace (the first 128).
func (b *batcher) startSpan(ds []*Delivery) (context.Context, trace.Span) {
	c := b.c
	if c.tr == nil {
		return c.base, nil
	}
	var links []trace.Link
	for _, d := range ds[:min(len(ds), 128)] {
		if sc := trace.SpanContextFromContext(c.tr.extract(context.Background(), d.Header)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return c.tr.tracer.Start(c.base, "process batch "+c.cfg.Durable, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), trace.WithLinks(links...),
		spanAttrs(semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingConsumerGroupName(c.cfg.Durable), semconv.MessagingBatchMessageCount(len(ds)),
			attribute.String("messaging.nats.stream", c.cfg.Stream),
			attribute.Int64("messaging.nats.first_sequence", int64(ds[0].StreamSeq)),
			attribute.Int64("messaging.nats.last_sequence", int64(ds[len(ds)-1].StreamSeq))))
}

// call runs the handler once over ds, with the logging scope, panic
// recovery and timeout of a delivery handler.
func (b *batcher) call(ctx context.Context, ds []*Delivery) (err error) {
	c := b.c
	dctx := deadlineUnder(ctx, time.Now().Add(c.cfg.HandlerTimeout), nil)
	defer dctx.release()
	ctx = dctx
	if c.m != nil {
		start := time.Now()
		defer func() {
			redelivered := 0
			for _, d := range ds {
				if d.Delivered > 1 {
					redelivered++
				}
			}
			c.m.handled(len(ds), redelivered, time.Since(start))
		}()
	}
	ctx = withLogScope(ctx, c.logger, attrsFunc(func() []any {
		return []any{
			slog.Uint64("first_seq", ds[0].StreamSeq),
			slog.Uint64("last_seq", ds[len(ds)-1].StreamSeq),
			slog.Int("batch", len(ds)),
		}
	}))
	defer func() {
		if v := recover(); v != nil {
			err = Permanent(panicked(ctx, v))
		}
	}()
	err = b.handler(ctx, ds)
	if err == nil && c.logger.Enabled(ctx, slog.LevelDebug) {
		LoggerFrom(ctx).Debug("batch handled")
	}
	return err
}

// deadLetter stores h's dead letter, retrying in place until it is stored
// (the messages behind it wait: none overtakes it), then terminates it.
func (b *batcher) deadLetter(h *heldMsg, d *Delivery, reason string, herr error) {
	c := b.c
	logger := c.logger.With(slog.String("subject", d.Subject), slog.Uint64("stream_seq", d.StreamSeq),
		slog.Uint64("delivered", d.Delivered), slog.String("event_id", d.EventID))
	for attempt := uint64(1); ; attempt++ {
		if err := c.storeDeadLetter(d, reason, herr, logger); err == nil {
			break
		}
		if !b.wait(backoff(c.cfg.RetryBase, c.cfg.RetryMax, attempt)) {
			b.giveBack([]*heldMsg{h})
			return
		}
	}
	h.release()
	_ = h.msg.TermWithReason(reason + ": " + headerSafe(herr.Error()))
}

// wait waits d, and reports false when Stop came first.
func (b *batcher) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.c.stopCh:
		return false
	}
}

func (b *batcher) giveBack(hs []*heldMsg) {
	for _, h := range hs {
		b.c.giveBack(h)
	}
}
