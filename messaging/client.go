package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// DefaultClientTimeout bounds a request whose context has no deadline.
const DefaultClientTimeout = 5 * time.Second

// Client sends requests to services and maps error replies back onto
// *Error. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
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

// NewClient returns a Client on nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	c := &Client{nc: nc, timeout: DefaultClientTimeout}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// CallOption adds to one request.
type CallOption func(nats.Header)

// WithHeader sets a request header.
func WithHeader(key, value string) CallOption {
	return func(h nats.Header) { h.Set(key, value) }
}

// WithIdempotencyKey sets the Idempotency-Key header.
func WithIdempotencyKey(key string) CallOption { return WithHeader(HeaderIdempotencyKey, key) }

// Call sends data to subject and returns the reply. It sends ctx's deadline
// (or now+timeout when ctx has none) in HeaderDeadline and ctx's request id
// in HeaderRequestID. Failures are *Error values: error replies as the
// service sent them, no responders as 503, a timeout as 504 (which also
// matches context.DeadlineExceeded), an oversized request as 413.
func (c *Client) Call(ctx context.Context, subject string, data []byte, opts ...CallOption) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderDeadline, FormatDeadline(deadline))
	id := RequestID(ctx)
	if id == "" {
		id = nuid.Next()
	}
	msg.Header.Set(HeaderRequestID, id)
	for _, opt := range opts {
		opt(msg.Header)
	}
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, requestError(subject, err)
	}
	if code := reply.Header.Get(HeaderErrorCode); code != "" {
		return nil, errorFromReply(code, reply.Header.Get(HeaderError), reply.Data)
	}
	return reply, nil
}

func requestError(subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("no service answers on %s", subject), cause: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &Error{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("no reply on %s before the deadline", subject), cause: context.DeadlineExceeded}
	case errors.Is(err, nats.ErrMaxPayload):
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("request to %s is larger than the server's max payload", subject), cause: err}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("request %s: %w", subject, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("request %s: not connected to NATS", subject), cause: err}
	}
	return fmt.Errorf("request %s: %w", subject, err)
}

// Request sends req as JSON to subject and decodes the reply into Resp. It
// is the typed form of [Client.Call], with the same error mapping. Reply
// decoding is lenient about unknown fields, so services can add fields
// without breaking older callers.
func Request[Req, Resp any](ctx context.Context, c *Client, subject string, req Req, opts ...CallOption) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("request %s: encode %T: %w", subject, req, err)
	}
	reply, err := c.Call(ctx, subject, data, opts...)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return resp, fmt.Errorf("request %s: decode reply into %T: %w", subject, resp, err)
	}
	return resp, nil
}
