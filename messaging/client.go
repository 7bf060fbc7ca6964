package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/wire"
)

// DefaultClientTimeout bounds a request whose context has no deadline.
const DefaultClientTimeout = 5 * time.Second

// Client sends requests to services and maps error replies back onto
// *wire.Error. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
	tr      *tracing       // nil: tracing off
	m       *clientMetrics // nil: metrics off

	// session holds the positions of the writes this client saw answered
	// (nil: no session), sent with every call so that a read sees them.
	mu      sync.Mutex
	session wire.Positions
	// sessionAfter is session.String(), kept so that calls made with no
	// positions of their own reuse it until a write advances the session.
	sessionAfter string
}

// ClientOption tunes a Client.
type ClientOption func(*Client) error

// WithTimeout sets the timeout applied to requests whose context has no
// deadline (default DefaultClientTimeout). A context deadline always wins.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %s: want > 0", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithoutSession makes the client keep no session: calls carry only the
// positions of their context (a gateway serving many callers, say, whose
// sessions are their own).
func WithoutSession() ClientOption {
	return func(c *Client) error {
		c.session = nil
		return nil
	}
}

// WithTelemetry counts and times the client's calls, by calling service
// (t's Service) and subject, and with tracing on makes a client span of
// each call, whose trace context the request carries (traceparent and
// tracestate headers), so that the service's span is its child.
func WithTelemetry(t *telemetry.Telemetry) ClientOption {
	return func(c *Client) error {
		c.tr = newTracing(t)
		c.m = newClientMetrics(t)
		return nil
	}
}

// NewClient returns a Client on nc. By default it keeps a session: every
// call carries the positions of the writes the client saw answered
// (wire.HeaderAfter), so reads see the client's own writes whichever
// replica answers them.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	c := &Client{nc: nc, timeout: DefaultClientTimeout, session: wire.Positions{}}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Call sends data to subject and returns the reply; it implements
// [wire.Caller], so the typed [wire.Call] and the contract packages' typed
// functions work on a Client. It sends ctx's deadline
// (or now+timeout when ctx has none) in HeaderDeadline and ctx's request id
// in HeaderRequestID (and, when traced, the call span's trace context).
// Failures are *wire.Error values: error replies as the
// service sent them (*wire.Error), no responders as 503, a timeout as 504 (which also
// matches context.DeadlineExceeded), an oversized request as 413.
func (c *Client) Call(ctx context.Context, subject string, data []byte, opts ...wire.CallOption) (*wire.Reply, error) {
	if c.tr == nil && c.m == nil {
		return c.call(ctx, subject, data, opts)
	}
	start := time.Now()
	var span trace.Span
	if c.tr != nil {
		ctx, span = c.tr.tracer.Start(ctx, subject, trace.WithSpanKind(trace.SpanKindClient),
			spanAttrs(semconv.RPCSystemNameKey.String("nats"), semconv.RPCMethod(subject), semconv.MessagingDestinationName(subject)))
	}
	reply, err := c.call(ctx, subject, data, opts)
	code := 200
	if err != nil {
		code = wire.CodeOf(err)
	}
	if c.m != nil {
		c.m.observe(subject, code, time.Since(start))
	}
	if span != nil {
		endSpan(span, code, err)
	}
	return reply, err
}

// EncodeRequest encodes a typed call's request; with DecodeReply it makes
// Client a [wire.Codec], so [wire.Call] encodes and decodes with the JSON v2
// codec in its encoding/json mode (github.com/go-json-experiment/json/v1):
// the same bytes and the same lenient decoding as encoding/json, with
// fewer allocations.
func (c *Client) EncodeRequest(v any) ([]byte, error) { return jsonv1.Marshal(v) }

// DecodeReply decodes a typed call's reply; see [Client.EncodeRequest].
func (c *Client) DecodeReply(data []byte, v any) error { return jsonv1.Unmarshal(data, v) }

func (c *Client) call(ctx context.Context, subject string, data []byte, opts []wire.CallOption) (*wire.Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	// The contract headers share one array of values (headerValues); the
	// map has room for a traceparent and tracestate too.
	hv := newHeaderValues(5, 3)
	hv.set(wire.HeaderDeadline, wire.FormatDeadline(deadline))
	id := wire.RequestID(ctx)
	if id == "" {
		id = nuid.Next()
	}
	hv.set(wire.HeaderRequestID, id)
	if after := c.after(ctx); after != "" {
		hv.set(wire.HeaderAfter, after)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: hv.h}
	for _, opt := range opts {
		opt(wire.Header(msg.Header))
	}
	if c.tr != nil {
		// After the options: a traced call carries its own span's
		// context, not one a gateway passed along.
		c.tr.inject(ctx, msg)
	}
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, requestError(subject, err)
	}
	if code := reply.Header.Get(wire.HeaderErrorCode); code != "" {
		return nil, errorFromReply(code, reply.Header.Get(wire.HeaderError), reply.Data)
	}
	c.saw(reply.Header)
	return &wire.Reply{Header: wire.Header(reply.Header), Data: reply.Data}, nil
}

// after is the HeaderAfter of a call: the context's positions and the
// session's, merged.
func (c *Client) after(ctx context.Context) string {
	p := wire.PositionsFrom(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.session) == 0 {
		if len(p) == 0 {
			return ""
		}
		return p.String()
	}
	if len(p) == 0 {
		return c.sessionAfter
	}
	all := wire.Positions{}
	all.Merge(c.session)
	all.Merge(p)
	return all.String()
}

// saw advances the session to the position a reply names.
func (c *Client) saw(h nats.Header) {
	stream := h.Get(wire.HeaderStream)
	if stream == "" {
		return
	}
	seq, err := strconv.ParseUint(h.Get(wire.HeaderSequence), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != nil && seq > c.session[stream] {
		c.session.Advance(stream, seq)
		c.sessionAfter = c.session.String()
	}
}

func requestError(subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return wire.NewError(wire.CodeUnavailable, fmt.Sprintf("no service answers on %s", subject)).WithCause(err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return wire.NewError(wire.CodeDeadlineExceeded, fmt.Sprintf("no reply on %s before the deadline", subject)).WithCause(context.DeadlineExceeded)
	case errors.Is(err, nats.ErrMaxPayload):
		return wire.NewError(wire.CodeTooLarge, fmt.Sprintf("request to %s is larger than the server's max payload", subject)).WithCause(err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("request %s: %w", subject, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		return wire.NewError(wire.CodeUnavailable, fmt.Sprintf("request %s: not connected to NATS", subject)).WithCause(err)
	}
	return fmt.Errorf("request %s: %w", subject, err)
}
