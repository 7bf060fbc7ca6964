package wire

import (
	"context"
	"fmt"
	"time"
)

// Headers defined by Switchboard. They are part of the public contract
// documented in docs/headers.md.
const (
	// HeaderDeadline carries the caller's absolute deadline as an RFC 3339
	// timestamp with nanoseconds, in UTC (time.RFC3339Nano). The handler's
	// context ends at that instant; a request that arrives after it is
	// answered 504 without being worked on. An absolute time (rather than
	// a remaining duration) also counts the time a request waited in
	// queues; it assumes hosts' clocks are synchronised (NTP), as usual.
	HeaderDeadline = "Switchboard-Deadline"
	// HeaderRequestID identifies one logical request across services; the
	// client sets it when the caller's context has none, and it is logged
	// with every record of the request.
	HeaderRequestID = "Switchboard-Request-Id"
	// HeaderIdempotencyKey makes a retried write return the first result
	// instead of applying twice (endpoints that support it say so).
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderEventType, HeaderEventID and HeaderVersion are set on every
	// event a service publishes: the event type (e.g. "user.created"), its
	// unique id (also its Nats-Msg-Id, for de-duplication by consumers),
	// and the entity's version after the event.
	HeaderEventType = "Switchboard-Event-Type"
	HeaderEventID   = "Switchboard-Event-Id"
	HeaderVersion   = "Switchboard-Version"
	// HeaderSequence and HeaderStream are set on the reply of a write: the
	// stream sequence of the event the write stored, and its stream. A
	// query endpoint that reads a projection can be asked to wait until it
	// has applied that sequence.
	HeaderSequence = "Switchboard-Sequence"
	HeaderStream   = "Switchboard-Stream"
	// HeaderAfter carries the positions a request must be answered as of
	// (see Positions): "USERS=12,ORDERS=7". messaging.Client sends the
	// positions of the writes it has seen answered.
	HeaderAfter = "Switchboard-After"
	// HeaderErrorCode and HeaderError are micro's error headers: the
	// status code and the message of an error reply.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
const MaxIdempotencyKey = 200

// FormatDeadline formats t for HeaderDeadline.
func FormatDeadline(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseDeadline parses a HeaderDeadline value; a malformed one is an error
// that matches ErrBadRequest.
func ParseDeadline(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, NewError(CodeBadRequest, fmt.Sprintf("%s header %q: want an RFC 3339 timestamp", HeaderDeadline, v))
	}
	return t, nil
}

type requestIDKey struct{}

// WithRequestID returns a context that carries the request id id; a client
// sends it in HeaderRequestID, so a chain of calls shares one id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
