package messaging

import (
	"context"

	"github.com/nats-io/nats.go"
)

type requestKey struct{}

// RequestFromContext returns the request a typed handler is serving, for
// the handlers that need its headers (an idempotency key, say).
func RequestFromContext(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}

// header returns h's first value for key, or "" when h is nil.
func header(h nats.Header, key string) string {
	if h == nil {
		return ""
	}
	return h.Get(key)
}
