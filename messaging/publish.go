package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/wire"
)

// Defaults of a Publisher.
const (
	DefaultMaxInFlight     = 256
	DefaultPublishAttempts = 5
	// defaultAttemptTimeout bounds one attempt when ctx leaves more time:
	// past it the outcome counts as unknown and the publish is sent again.
	defaultAttemptTimeout = 2 * time.Second
)

// OutEvent is an event to publish: a subject, a type, an id and a JSON
// payload. The headers of the event contract (docs/headers.md) are set from
// it.
type OutEvent struct {
	Subject string
	// Type goes in Switchboard-Event-Type, e.g. "order.placed".
	Type string
	// ID is the event id (Switchboard-Event-Id and Nats-Msg-Id), which
	// de-duplicates retried publishes; a random one when empty.
	ID string
	// Version, when > 0, goes in Switchboard-Version.
	Version int64
	// Data is encoded as JSON.
	Data any
	// Header adds headers.
	Header nats.Header
}

// Publisher publishes to JetStream, one message or an atomic batch, and
// makes sure of the outcome: a publish whose outcome is unknown (no ack in
// time, a reconnect, a leader election) is sent again under the same
// Nats-Msg-Ids, and a resend that the server refuses because the first
// send was stored after all counts as the success it is. It is the one
// publish path of every service. It is safe for concurrent use.
type Publisher struct {
	js       jetstream.JetStream
	attempts int
	tr       *tracing        // nil: tracing off
	m        *publishMetrics // nil: metrics off
	// timers holds the stopped attempt timers of send for reuse: a
	// context.WithTimeout per attempt allocated a context, a timer and a
	// cancel registration on the caller's context for every publish.
	timers sync.Pool
}

// PublisherOption tunes a Publisher.
type PublisherOption func(*publisherOptions) error

type publisherOptions struct {
	maxInFlight int
	attempts    int
	telemetry   *telemetry.Telemetry
}

// WithPublishTelemetry counts and times the publishes (by the publishing
// service, t's Service, and stream) and, with tracing on, makes a producer
// span of each, whose trace context every message carries in its
// traceparent and tracestate headers: a consumer's span continues it.
func WithPublishTelemetry(t *telemetry.Telemetry) PublisherOption {
	return func(o *publisherOptions) error {
		o.telemetry = t
		return nil
	}
}

// WithMaxInFlight bounds unacknowledged publishes (default 256); a publish
// beyond it waits for a free slot.
func WithMaxInFlight(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight %d", ErrInvalidOption, n)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithPublishAttempts sets how often a publish whose outcome is unknown is
// sent (default 5).
func WithPublishAttempts(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: publish attempts %d", ErrInvalidOption, n)
		}
		o.attempts = n
		return nil
	}
}

// NewPublisher returns a Publisher on nc.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	o := publisherOptions{maxInFlight: DefaultMaxInFlight, attempts: DefaultPublishAttempts}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(o.maxInFlight))
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	return &Publisher{js: js, attempts: o.attempts, tr: newTracing(o.telemetry), m: newPublishMetrics(o.telemetry)}, nil
}

// Msg builds the NATS message for ev: its payload and the contract headers.
func (p *Publisher) Msg(ctx context.Context, ev OutEvent) (*nats.Msg, error) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("publish %s: encode %T: %w", ev.Subject, ev.Data, err)
	}
	id := ev.ID
	if id == "" {
		id = nuid.Next()
	}
	// The contract headers share one array of values (headerValues).
	hv := newHeaderValues(len(ev.Header)+6, 6)
	for k, v := range ev.Header {
		hv.h[k] = v
	}
	hv.set(jetstream.MsgIDHeader, id)
	hv.set(wire.HeaderEventID, id)
	if ev.Type != "" {
		hv.set(wire.HeaderEventType, ev.Type)
	}
	if ev.Version > 0 {
		hv.set(wire.HeaderVersion, strconv.FormatInt(ev.Version, 10))
	}
	hv.set("Content-Type", "application/json")
	if rid := wire.RequestID(ctx); rid != "" {
		hv.set(wire.HeaderRequestID, rid)
	}
	return &nats.Msg{Subject: ev.Subject, Header: hv.h, Data: data}, nil
}

// PublishAsync sends ev and returns at once with a future for its ack. It
// does not resend: use it for fire-and-forget streams of events whose
// publisher checks the futures itself.
func (p *Publisher) PublishAsync(ctx context.Context, ev OutEvent, opts ...PublishOption) (jetstream.PubAckFuture, error) {
	msg, err := p.Msg(ctx, ev)
	if err != nil {
		return nil, err
	}
	applyExpectations(msg, opts)
	if p.tr != nil {
		p.tr.inject(ctx, msg)
	}
	return p.js.PublishMsgAsync(msg)
}

// Publish sends ev and waits for the server to store it. The error is nil
// exactly when the event is stored; a refused expectation is a 409
// *wire.Error (errors.Is(err, wire.ErrConflict)); other refusals, and ctx
// ending first, are errors too.
func (p *Publisher) Publish(ctx context.Context, ev OutEvent, opts ...PublishOption) (*jetstream.PubAck, error) {
	msg, err := p.Msg(ctx, ev)
	if err != nil {
		return nil, err
	}
	applyExpectations(msg, opts)
	return p.PublishMsgs(ctx, msg)
}

// PublishMsgs stores msgs atomically, all or none, in the order given (one
// message is a plain publish; more are an atomic batch, which needs a
// stream with AllowAtomicPublish, nats-server 2.12 or later). Expectations
// go in each message's headers (see [Expect]); a message without a
// Nats-Msg-Id gets a random one, so that resends are de-duplicated. The ack
// is the last message's. Errors are as for Publish. With tracing on, the
// publish is a producer span and every message carries its trace context.
func (p *Publisher) PublishMsgs(ctx context.Context, msgs ...*nats.Msg) (*jetstream.PubAck, error) {
	if len(msgs) == 0 {
		return nil, errors.New("publish: no messages")
	}
	for _, m := range msgs {
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		if m.Header.Get(jetstream.MsgIDHeader) == "" {
			m.Header.Set(jetstream.MsgIDHeader, nuid.Next())
		}
	}
	if p.tr == nil && p.m == nil {
		ack, _, _, err := p.publish(ctx, msgs)
		return ack, err
	}
	start := time.Now()
	var span trace.Span
	if p.tr != nil {
		ctx, span = p.startSpan(ctx, msgs)
		for _, m := range msgs {
			p.tr.inject(ctx, m)
		}
	}
	ack, resends, failure, err := p.publish(ctx, msgs)
	if p.m != nil {
		p.m.observe(ack, len(msgs), resends, failure, time.Since(start))
	}
	if span != nil {
		if ack != nil {
			span.SetAttributes(attribute.String("messaging.nats.stream", ack.Stream), attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)),
				attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return ack, err
}

// startSpan starts the producer span of msgs, named after the event type
// of the last (subjects hold ids: no span name should).
func (p *Publisher) startSpan(ctx context.Context, msgs []*nats.Msg) (context.Context, trace.Span) {
	last := msgs[len(msgs)-1]
	name := "publish"
	if typ := last.Header.Get(wire.HeaderEventType); typ != "" {
		name += " " + typ
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingOperationName("publish"), semconv.MessagingOperationTypeSend,
		semconv.MessagingDestinationName(last.Subject), semconv.MessagingMessageID(last.Header.Get(jetstream.MsgIDHeader)),
	}
	if len(msgs) > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(msgs)))
	}
	return p.tr.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), spanAttrs(attrs...))
}

// Reasons a publish failed, in the publish metrics.
const (
	failConflict       = "conflict"       // an expectation did not hold (409)
	failRefused        = "refused"        // the server refused it
	failUnacknowledged = "unacknowledged" // no ack after every attempt
	failCanceled       = "canceled"       // ctx ended first
)

// publish makes the attempts of PublishMsgs, and says how many resends it
// took and, on failure, why it failed.
func (p *Publisher) publish(ctx context.Context, msgs []*nats.Msg) (_ *jetstream.PubAck, resends int, failure string, _ error) {
	last := msgs[len(msgs)-1]
	var lastErr error
	for attempt := 0; attempt < p.attempts; attempt++ {
		if attempt > 0 {
			resends++
		}
		ack, err := p.send(ctx, msgs)
		if err == nil {
			return ack, resends, "", nil
		}
		if ctx.Err() != nil {
			return nil, resends, failCanceled, fmt.Errorf("publish %s: %w (last: %v)", last.Subject, ctx.Err(), err)
		}
		refused := IsWrongLastSequence(err) || isBatchDuplicate(err)
		if refused && attempt > 0 {
			// The server checks expectations before de-duplication:
			// when an earlier send was stored after all, this resend
			// is refused. Ask the stream whether it has our message.
			if ack, ok := p.stored(ctx, last); ok {
				return ack, resends, "", nil
			}
		}
		switch {
		case IsWrongLastSequence(err):
			return nil, resends, failConflict, wire.NewError(wire.CodeConflict, fmt.Sprintf("%s changed concurrently", last.Subject)).WithCause(err)
		case isRefusal(err):
			return nil, resends, failRefused, fmt.Errorf("publish %s: %w", last.Subject, err) // final
		}
		lastErr = err // unknown outcome: send again, same ids
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			attempt-- // the window is full: waiting is not a failed attempt
		}
		if werr := sleepCtx(ctx, 10*time.Millisecond); werr != nil {
			return nil, resends, failCanceled, fmt.Errorf("publish %s: %w (last: %v)", last.Subject, werr, lastErr)
		}
	}
	return nil, resends, failUnacknowledged, wire.NewError(wire.CodeUnavailable, fmt.Sprintf("publish %s: not acknowledged after %d attempts; retry later", last.Subject, p.attempts)).WithCause(lastErr)
}

// send makes one attempt, bounded by the attempt timeout.
func (p *Publisher) send(ctx context.Context, msgs []*nats.Msg) (*jetstream.PubAck, error) {
	if len(msgs) == 1 {
		fut, err := p.js.PublishMsgAsync(msgs[0])
		if err != nil {
			return nil, err
		}
		t := p.attemptTimer()
		defer p.timers.Put(t)
		defer t.Stop()
		select {
		case ack := <-fut.Ok():
			return ack, nil
		case err := <-fut.Err():
			return nil, err
		case <-t.C:
			return nil, context.DeadlineExceeded
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	actx, cancel := context.WithTimeout(ctx, defaultAttemptTimeout)
	defer cancel()
	ack, err := jetstreamext.PublishMsgBatch(actx, p.js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
	if err != nil {
		return nil, err
	}
	return &jetstream.PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Domain: ack.Domain}, nil
}

// attemptTimer is a running timer of one attempt, reused from earlier
// sends when one is free. Since Go 1.23 a stopped timer's channel holds
// no stale tick, so a timer put back after Stop is as good as new.
func (p *Publisher) attemptTimer() *time.Timer {
	if t, ok := p.timers.Get().(*time.Timer); ok {
		t.Reset(defaultAttemptTimeout)
		return t
	}
	return time.NewTimer(defaultAttemptTimeout)
}

// stored reports whether the stream holds msg (by its Nats-Msg-Id, as the
// last message on its subject), and its ack.
func (p *Publisher) stored(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, bool) {
	stream, err := p.js.StreamNameBySubject(ctx, msg.Subject)
	if err != nil {
		return nil, false
	}
	m, err := LastMsg(ctx, p.js, stream, msg.Subject)
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != msg.Header.Get(jetstream.MsgIDHeader) {
		return nil, false
	}
	return &jetstream.PubAck{Stream: stream, Sequence: m.Sequence, Duplicate: true}, true
}

// isRefusal reports whether err is the server's final answer (an API
// error other than a duplicate batch), not an unknown outcome.
func isRefusal(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr)
}

// isBatchDuplicate reports whether err refuses a batch whose message ids
// the stream has seen: a resent batch that was stored the first time.
func isBatchDuplicate(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishDuplicateMsgID
}

// PublishOption adds a JetStream expectation to a publish.
type PublishOption func(*nats.Msg)

// ExpectLastSubjectSequence makes the write conditional: it is stored only
// when the last message on its subject has stream sequence seq (0: the
// subject has no message yet). Otherwise the publish fails with a 409.
func ExpectLastSubjectSequence(seq uint64) PublishOption {
	return func(m *nats.Msg) { m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10)) }
}

// ExpectLastSequenceFor is ExpectLastSubjectSequence for the subjects that
// filter matches (wildcards allowed), e.g. all of one order's events on
// orders.events.<id>.*.
func ExpectLastSequenceFor(filter string, seq uint64) PublishOption {
	return func(m *nats.Msg) {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, filter)
	}
}

// WithMsgTTL makes the stream delete the message after ttl (the stream
// needs AllowMsgTTL).
func WithMsgTTL(ttl time.Duration) PublishOption {
	return func(m *nats.Msg) { m.Header.Set(jetstream.MsgTTLHeader, ttl.String()) }
}

// Expect applies opts to msg's headers, for PublishMsgs.
func Expect(msg *nats.Msg, opts ...PublishOption) *nats.Msg {
	applyExpectations(msg, opts)
	return msg
}

func applyExpectations(msg *nats.Msg, opts []PublishOption) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	for _, opt := range opts {
		opt(msg)
	}
}

// IsWrongLastSequence reports whether err is JetStream refusing a write
// whose expected last sequence did not hold (error codes 10071, and 10164
// when the subject is being written by another publish at that moment).
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
