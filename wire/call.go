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

// Codec encodes a request and decodes a reply with encoding/json's
// semantics. A [Caller] that also implements Codec gives [Call] its own,
// faster implementation of the same semantics (messaging.Client uses the
// JSON v2 codec with its v1 options: the same bytes and the same decoding,
// at half the cost of a decode); wire itself needs only the standard
// library, so any other Caller gets encoding/json.
type Codec interface {
	EncodeRequest(v any) ([]byte, error)
	DecodeReply(data []byte, v any) error
}

// stdCodec is encoding/json, for a Caller without a Codec.
type stdCodec struct{}

func (stdCodec) EncodeRequest(v any) ([]byte, error)  { return json.Marshal(v) }
func (stdCodec) DecodeReply(data []byte, v any) error { return json.Unmarshal(data, v) }

// Call sends req as JSON to subject through c and decodes the reply into
// Resp, with c's [Codec] when it has one and encoding/json otherwise. Reply
// decoding is lenient about unknown fields, so a service can add fields
// without breaking older callers. Contract packages wrap it in one typed
// function per endpoint.
func Call[Req, Resp any](ctx context.Context, c Caller, subject string, req Req, opts ...CallOption) (Resp, error) {
	var resp Resp
	codec, ok := c.(Codec)
	if !ok {
		codec = stdCodec{}
	}
	data, err := codec.EncodeRequest(req)
	if err != nil {
		return resp, fmt.Errorf("call %s: encode %T: %w", subject, req, err)
	}
	reply, err := c.Call(ctx, subject, data, opts...)
	if err != nil {
		return resp, err
	}
	if err := codec.DecodeReply(reply.Data, &resp); err != nil {
		return resp, fmt.Errorf("call %s: decode reply into %T: %w", subject, resp, err)
	}
	return resp, nil
}
