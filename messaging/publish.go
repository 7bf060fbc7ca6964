package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/devloop/switchboard/wire"
)

// Defaults of a Publisher.
const (
	DefaultMaxInFlight     = 256
	DefaultPublishAttempts = 5
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

// Publisher publishes events to JetStream with asynchronous acks: many
// publishes share the connection, at most MaxInFlight unacknowledged at
// once. It is safe for concurrent use.
type Publisher struct {
	js       jetstream.JetStream
	attempts int
}

// PublisherOption tunes a Publisher.
type PublisherOption func(*publisherOptions) error

type publisherOptions struct {
	maxInFlight int
	attempts    int
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

// WithPublishAttempts sets how often a publish whose outcome is unknown
// (no ack in time) is sent again under the same id (default 5).
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
	return &Publisher{js: js, attempts: o.attempts}, nil
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
	h := nats.Header{}
	for k, v := range ev.Header {
		h[k] = v
	}
	h.Set(jetstream.MsgIDHeader, id)
	h.Set(wire.HeaderEventID, id)
	if ev.Type != "" {
		h.Set(wire.HeaderEventType, ev.Type)
	}
	if ev.Version > 0 {
		h.Set(wire.HeaderVersion, strconv.FormatInt(ev.Version, 10))
	}
	h.Set("Content-Type", "application/json")
	if rid := wire.RequestID(ctx); rid != "" {
		h.Set(wire.HeaderRequestID, rid)
	}
	return &nats.Msg{Subject: ev.Subject, Header: h, Data: data}, nil
}

// PublishAsync sends ev and returns at once with a future for its ack.
func (p *Publisher) PublishAsync(ctx context.Context, ev OutEvent, opts ...PublishOption) (jetstream.PubAckFuture, error) {
	msg, err := p.Msg(ctx, ev)
	if err != nil {
		return nil, err
	}
	return p.js.PublishMsgAsync(msg, publishOpts(opts)...)
}

// Publish sends ev and waits for the server to store it. A publish whose
// outcome is unknown (no ack in time, a reconnect) is sent again under the
// same id, which the server de-duplicates, so the error is nil exactly when
// the event was stored; it is an error when the server refused it (a 409
// for a failed expectation) or when ctx ended first.
func (p *Publisher) Publish(ctx context.Context, ev OutEvent, opts ...PublishOption) (*jetstream.PubAck, error) {
	msg, err := p.Msg(ctx, ev)
	if err != nil {
		return nil, err
	}
	popts := publishOpts(opts)
	var last error
	for attempt := 0; attempt < p.attempts; attempt++ {
		fut, err := p.js.PublishMsgAsync(msg, popts...)
		if err != nil {
			last = err
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				attempt-- // the window is full: waiting is not a failed attempt
			}
			if werr := sleepCtx(ctx, 10*time.Millisecond); werr != nil {
				return nil, fmt.Errorf("publish %s: %w (last: %v)", ev.Subject, werr, last)
			}
			continue
		}
		select {
		case ack := <-fut.Ok():
			return ack, nil
		case err := <-fut.Err():
			if IsWrongLastSequence(err) {
				return nil, wire.NewError(wire.CodeConflict, fmt.Sprintf("%s changed concurrently", ev.Subject)).WithCause(err)
			}
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				return nil, fmt.Errorf("publish %s: %w", ev.Subject, err) // refused: final
			}
			last = err // timed out, no responders: unknown, send again
		case <-ctx.Done():
			return nil, fmt.Errorf("publish %s: %w", ev.Subject, ctx.Err())
		}
	}
	return nil, fmt.Errorf("publish %s: not acknowledged after %d attempts: %w", ev.Subject, p.attempts, last)
}

func publishOpts(opts []PublishOption) []jetstream.PublishOpt {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	var popts []jetstream.PublishOpt
	if o.msgID != "" {
		popts = append(popts, jetstream.WithMsgID(o.msgID))
	}
	if o.lastSubSeq != nil {
		if o.lastSubSeqSubject != "" {
			popts = append(popts, jetstream.WithExpectLastSequenceForSubject(*o.lastSubSeq, o.lastSubSeqSubject))
		} else {
			popts = append(popts, jetstream.WithExpectLastSequencePerSubject(*o.lastSubSeq))
		}
	}
	return popts
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
