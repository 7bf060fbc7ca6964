package wire

import (
	"context"
	"encoding/json"
	"fmt"
)

// Header holds message headers. Keys are case-sensitive, as in NATS; the
// type converts to and from nats.Header.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Reply is the answer to a call: its headers and its payload.
type Reply struct {
	Header Header
	Data   []byte
}

// CallOption adds to one call.
type CallOption func(Header)

// WithHeader sets a request header.
func WithHeader(key, value string) CallOption {
	return func(h Header) { h.Set(key, value) }
}

// WithIdempotencyKey sets the Idempotency-Key header.
func WithIdempotencyKey(key string) CallOption { return WithHeader(HeaderIdempotencyKey, key) }

// Caller sends one request and returns its reply; an error reply is an
// error (an *Error, or one wrapping it). messaging.Client implements it
// over NATS.
type Caller interface {
	Call(ctx context.Context, subject string, data []byte, opts ...CallOption) (*Reply, error)
}

// Call sends req as JSON to subject through c and decodes the reply into
// Resp. Reply decoding is lenient about unknown fields, so a service can add
// fields without breaking older callers. Contract packages wrap it in one
// typed function per endpoint.
func Call[Req, Resp any](ctx context.Context, c Caller, subject string, req Req, opts ...CallOption) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("call %s: encode %T: %w", subject, req, err)
	}
	reply, err := c.Call(ctx, subject, data, opts...)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return resp, fmt.Errorf("call %s: decode reply into %T: %w", subject, resp, err)
	}
	return resp, nil
}
