package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/devloop/switchboard/wire"
)

// DefaultClientTimeout bounds a request whose context has no deadline.
const DefaultClientTimeout = 5 * time.Second

// Client sends requests to services and maps error replies back onto
// *wire.Error. It is safe for concurrent use.
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

// Call sends data to subject and returns the reply; it implements
// [wire.Caller], so the typed [wire.Call] and the contract packages' typed
// functions work on a Client. It sends ctx's deadline
// (or now+timeout when ctx has none) in HeaderDeadline and ctx's request id
// in HeaderRequestID. Failures are *wire.Error values: error replies as the
// service sent them (*wire.Error), no responders as 503, a timeout as 504 (which also
// matches context.DeadlineExceeded), an oversized request as 413.
func (c *Client) Call(ctx context.Context, subject string, data []byte, opts ...wire.CallOption) (*wire.Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(wire.HeaderDeadline, wire.FormatDeadline(deadline))
	id := wire.RequestID(ctx)
	if id == "" {
		id = nuid.Next()
	}
	msg.Header.Set(wire.HeaderRequestID, id)
	for _, opt := range opts {
		opt(wire.Header(msg.Header))
	}
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, requestError(subject, err)
	}
	if code := reply.Header.Get(wire.HeaderErrorCode); code != "" {
		return nil, errorFromReply(code, reply.Header.Get(wire.HeaderError), reply.Data)
	}
	return &wire.Reply{Header: wire.Header(reply.Header), Data: reply.Data}, nil
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
