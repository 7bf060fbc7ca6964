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

// headerValues builds a message's headers with their values in one array:
// each header is a slice of its own, capped at one value (so an Add to one
// never writes into another), which costs one allocation instead of one
// per header. The keys must be in canonical form already, as Header.Set
// leaves them.
type headerValues struct {
	h    nats.Header
	vals []string
}

// newHeaderValues makes room for keys headers, of which values are set
// with set.
func newHeaderValues(keys, values int) headerValues {
	return headerValues{h: make(nats.Header, keys), vals: make([]string, 0, values)}
}

// set sets header k to the one value v.
func (b *headerValues) set(k, v string) {
	b.vals = append(b.vals, v)
	n := len(b.vals)
	b.h[k] = b.vals[n-1 : n : n]
}
