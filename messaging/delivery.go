package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/wire"
)

// Delivery is one delivery of a stream message to a consumer: where it
// comes from, how often it was delivered, and its headers and payload.
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
	// Time is when the stream stored the message.
	Time    time.Time
	Header  nats.Header
	Payload []byte

	sc *deliveryScope // allocated with the Delivery by newDelivery
}

// deliveryScope is the context a delivery's handlers run in below the
// consumer's logging: one node that answers for the delivery
// ([DeliveryFromContext]) and its scoped logger ([LoggerFrom]), where a
// context.WithValue for each would be a node and an allocation each. It
// is allocated with its Delivery (a Delivery is copied into an Event, so
// it holds only a pointer to it).
type deliveryScope struct {
	logScope
	d *Delivery
	// timeout is the handler's deadline (timeoutDeliveries), kept here
	// for the same reason.
	timeout deadlineCtx
}

// Value answers for the delivery and asks the log scope for the rest.
func (c *deliveryScope) Value(key any) any {
	if _, ok := key.(deliveryKey); ok {
		return c.d
	}
	return c.logScope.Value(key)
}

// scope returns d's delivery scope under ctx, with a logger built on base:
// the one allocated with d the first time, a new one after (a second
// logging layer) or for a Delivery not made by newDelivery (a copy of one,
// as in an Event, points at its original's scope).
func (d *Delivery) scope(ctx context.Context, base *slog.Logger) *deliveryScope {
	sc := d.sc
	if sc == nil || sc.Context != nil || sc.d != d {
		sc = new(deliveryScope)
	}
	sc.d = d
	sc.set(ctx, base, d)
	return sc
}

// Event is a delivery whose payload was decoded into T.
type Event[T any] struct {
	Delivery
	Data T
}

// DeliveryHandler handles one delivery. Its error decides what happens to
// the message (see [Consume]).
type DeliveryHandler func(ctx context.Context, d *Delivery) error

// DeliveryMiddleware wraps a DeliveryHandler with behaviour shared by
// consumers, as [Middleware] does for requests. ConsumerConfig.Middleware
// runs inside the built-in logging, panic recovery and timeout.
type DeliveryMiddleware func(DeliveryHandler) DeliveryHandler

// chainDeliveries applies mw to h so that mw[0] is the outermost.
func chainDeliveries(h DeliveryHandler, mw ...DeliveryMiddleware) DeliveryHandler {
	return chain(h, mw)
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery a consumer handler is working on.
func DeliveryFromContext(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// newDelivery reads msg's metadata and contract headers.
func newDelivery(msg jetstream.Msg) (*Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	h := msg.Headers()
	// One allocation for the delivery and its scope.
	both := &struct {
		d  Delivery
		sc deliveryScope
	}{}
	d := &both.d
	*d = Delivery{
		sc:        &both.sc,
		Subject:   msg.Subject(),
		Stream:    meta.Stream,
		Consumer:  meta.Consumer,
		StreamSeq: meta.Sequence.Stream,
		Delivered: meta.NumDelivered,
		EventType: header(h, wire.HeaderEventType),
		EventID:   header(h, wire.HeaderEventID),
		Time:      meta.Timestamp,
		Header:    h,
		Payload:   msg.Data(),
	}
	if d.EventID == "" {
		d.EventID = header(h, jetstream.MsgIDHeader)
	}
	if d.EventID == "" {
		d.EventID = fmt.Sprintf("%s:%d", d.Stream, d.StreamSeq)
	}
	both.sc.d = d
	return d, nil
}

// logAttrs are the attributes of d's records: subject, stream_seq,
// delivered and event_id.
func (d *Delivery) logAttrs() []any {
	return []any{
		slog.String("subject", d.Subject),
		slog.Uint64("stream_seq", d.StreamSeq),
		slog.Uint64("delivered", d.Delivered),
		slog.String("event_id", d.EventID),
	}
}

// logDeliveries is the consumer side of [Logging]: it puts the delivery
// and a logger scoped with its subject, sequence, delivery count and event
// id (built only when something logs) into the context, in one node
// (deliveryScope), and logs success at Debug. Failures are logged where
// their outcome is decided (retry or dead letter).
func logDeliveries(logger *slog.Logger) DeliveryMiddleware {
	return func(next DeliveryHandler) DeliveryHandler {
		return func(ctx context.Context, d *Delivery) error {
			ctx = d.scope(ctx, logger)
			err := next(ctx, d)
			if err == nil && logger.Enabled(ctx, slog.LevelDebug) {
				LoggerFrom(ctx).Debug("handled")
			}
			return err
		}
	}
}

// recoverDeliveries is the consumer side of [Recover]: a panic is logged
// once with its stack and becomes a permanent failure (retrying a panic
// rarely helps, and it must not kill the worker).
func recoverDeliveries() DeliveryMiddleware {
	return func(next DeliveryHandler) DeliveryHandler {
		return func(ctx context.Context, d *Delivery) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = Permanent(panicked(ctx, v))
				}
			}()
			return next(ctx, d)
		}
	}
}

// timeoutDeliveries bounds one handler call. It is the request side's
// deadline context ([Deadline]): its timer starts only when the handler
// (or a context made under its context) waits on it, so a handler that
// never does costs no timer.
func timeoutDeliveries(d time.Duration) DeliveryMiddleware {
	return func(next DeliveryHandler) DeliveryHandler {
		return func(ctx context.Context, dl *Delivery) error {
			var into *deadlineCtx
			if sc := dl.sc; sc != nil && sc.d == dl {
				into = &sc.timeout
			}
			dctx := deadlineUnder(ctx, time.Now().Add(d), into)
			defer dctx.release()
			return next(dctx, dl)
		}
	}
}

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

// undecodable marks a payload that does not decode into the handler's type.
type undecodable struct{ error }

func (u undecodable) Unwrap() error { return u.error }

// backoff is RetryBase·2^(delivered-1), at most RetryMax, with jitter.
func backoff(base, maxDelay time.Duration, delivered uint64) time.Duration {
	d := base << min(max(delivered, 1)-1, 30)
	if d <= 0 || d > maxDelay {
		d = maxDelay
	}
	// Full jitter in [d/2, d): spreads retries of many messages.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
