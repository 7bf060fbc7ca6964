package messaging

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Msg is a request as middleware and raw handlers see it.
type Msg struct {
	// Service and Endpoint name the micro service and endpoint serving it.
	Service  string
	Endpoint string
	// Subject is the subject the request was sent to.
	Subject string
	// Header holds the request's NATS headers (may be nil).
	Header nats.Header
	// Data is the raw payload.
	Data []byte
	// Received is when the service took the request off the wire.
	Received time.Time
}

// Response is a successful reply.
type Response struct {
	Header nats.Header
	Data   []byte
}

// Handler serves one request. An error reply is made from a returned error
// (see [Error] for how errors map onto status codes).
type Handler interface {
	Serve(ctx context.Context, req *Msg) (*Response, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, req *Msg) (*Response, error)

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, req *Msg) (*Response, error) {
	return f(ctx, req)
}

// Middleware wraps a Handler with behaviour shared by many endpoints.
type Middleware func(Handler) Handler

// Chain applies mw to h so that mw[0] is the outermost: it sees the request
// first and the result last.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

type loggerKey struct{}

// LoggerFrom returns the request-scoped logger a service puts in a
// handler's context: it carries the service, endpoint, subject and request
// id. Outside a request it returns a logger that discards.
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}
