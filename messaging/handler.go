package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/wire"
)

// Request is a request as a service sees it: what middleware and raw
// handlers work on. (The client side of a call is [Client.Call].) It
// holds its handlers' context, so pass it by pointer: a copy made while
// it is being served is not a second request.
type Request struct {
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
	// Reply is the subject the answer goes to ("" for a publish).
	Reply string

	replyHeader wire.Header // set by SetReplyHeader
	// What a request's handling needs once, kept here so that a request
	// costs one allocation for all of them: the context nodes of Logging
	// and Deadline and a typed handler's reply.
	sc      requestScope
	dl      deadlineCtx
	reply   wire.Reply
	replied bool
}

// newReply returns the request's reply to fill in: its own the first
// time, a new one after (a middleware that calls its handler twice).
func (r *Request) newReply() *wire.Reply {
	if r.replied {
		return new(wire.Reply)
	}
	r.replied = true
	return &r.reply
}

// Caller names who sent the request, as far as the connection tells: the
// first token of its reply subject, which is the inbox prefix of the
// caller's connection. Where every NATS user has its own inbox prefix and
// may subscribe to no other (docs/security.md), it names the user; on a
// server without such permissions, all callers share "_INBOX".
func (r *Request) Caller() string {
	first, _, _ := strings.Cut(r.Reply, ".")
	return first
}

// SetReplyHeader adds a header to the reply of the typed request that ctx
// belongs to (a write's stream sequence, say). Outside a typed handler it
// does nothing.
func SetReplyHeader(ctx context.Context, key, value string) {
	r, ok := RequestFromContext(ctx)
	if !ok {
		return
	}
	if r.replyHeader == nil {
		r.replyHeader = wire.Header{}
	}
	r.replyHeader.Set(key, value)
}

// Handler serves one request. An error reply is made from a returned error
// (see [wire.ErrorOf] for how errors map onto status codes).
type Handler interface {
	Serve(ctx context.Context, req *Request) (*wire.Reply, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, req *Request) (*wire.Reply, error)

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, req *Request) (*wire.Reply, error) {
	return f(ctx, req)
}

// Middleware wraps a Handler with behaviour shared by many endpoints.
type Middleware func(Handler) Handler

// Chain applies mw to h so that mw[0] is the outermost: it sees the request
// first and the result last.
func Chain(h Handler, mw ...Middleware) Handler { return chain(h, mw) }

// chain wraps h in mw, mw[0] outermost: the one way requests and
// deliveries are both wrapped.
func chain[H any, M ~func(H) H](h H, mw []M) H {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

type loggerKey struct{}

// lazyLogger builds a logger with request attributes only when a handler
// asks for it: logger.With copies the handler, which costs more than the
// rest of a small request, and most requests log nothing. The attributes
// are made on first use too (boxing each into an any allocates).
type lazyLogger struct {
	once  sync.Once
	base  *slog.Logger
	attrs attrSource
	sc    trace.SpanContext
	l     *slog.Logger
}

// attrSource gives the attributes of a scope's log records. A request
// scope and a delivery are their own source, so scoping a logger to them
// costs no closure.
type attrSource interface{ logAttrs() []any }

// attrsFunc is an attrSource made of a function.
type attrsFunc func() []any

func (f attrsFunc) logAttrs() []any { return f() }

func (z *lazyLogger) get() *slog.Logger {
	z.once.Do(func() { z.l = z.base.With(append(z.attrs.logAttrs(), traceAttrs(z.sc)...)...) })
	return z.l
}

// withLogScope puts a logger carrying the attributes attrs gives into ctx,
// built on first use, with the trace_id and span_id of ctx's span when it
// has one. Batches use it; requests and deliveries embed a logScope in
// their own context node.
func withLogScope(ctx context.Context, base *slog.Logger, attrs attrSource) context.Context {
	s := new(logScope)
	s.set(ctx, base, attrs)
	return s
}

// logScope is what the context nodes of requests, deliveries and batches
// share: the parent context and the scoped logger ([LoggerFrom]), in one
// node rather than a context.WithValue and a logger each.
type logScope struct {
	context.Context
	log lazyLogger
}

// set makes s a node under ctx whose logger is built on base with attrs.
func (s *logScope) set(ctx context.Context, base *slog.Logger, attrs attrSource) {
	s.Context = ctx
	s.log.base, s.log.attrs, s.log.sc = base, attrs, trace.SpanContextFromContext(ctx)
}

// Value answers for the logger and asks the parent context for the rest.
func (s *logScope) Value(key any) any {
	if _, ok := key.(loggerKey); ok {
		return &s.log
	}
	return s.Context.Value(key)
}

// requestScope is the context a request's handlers run in below
// [Logging]: one node that answers for the request itself
// ([RequestFromContext]), its id and the caller's positions
// ([wire.RequestID], [wire.PositionsFrom]) and the request-scoped logger
// ([LoggerFrom]), where a context.WithValue for each would be a node and an
// allocation each. It lives in the Request, so it costs no allocation of
// its own.
type requestScope struct {
	logScope
	req   *Request
	id    string
	after wire.AfterHeader // the caller's positions
}

// scope returns r's request scope under ctx, with the request id id and a
// logger built on base; the caller sets its positions. A second Logging in
// one chain gets a scope of its own.
func (r *Request) scope(ctx context.Context, base *slog.Logger, id string) *requestScope {
	sc := &r.sc
	if sc.Context != nil {
		sc = new(requestScope)
	}
	sc.req, sc.id = r, id
	sc.set(ctx, base, sc)
	return sc
}

// Value answers the request scope's keys and asks the log scope for the
// others.
func (c *requestScope) Value(key any) any {
	if _, ok := key.(requestKey); ok {
		return c.req
	}
	if v, ok := wire.ScopeValue(key, c.id, &c.after); ok {
		return v
	}
	return c.logScope.Value(key)
}

// logAttrs are the attributes of a request's records: service, endpoint,
// subject and request_id.
func (c *requestScope) logAttrs() []any {
	return []any{
		slog.String("service", c.req.Service),
		slog.String("endpoint", c.req.Endpoint),
		slog.String("subject", c.req.Subject),
		slog.String("request_id", c.id),
	}
}

// LoggerFrom returns the request-scoped logger a service puts in a
// handler's context: it carries the service, endpoint, subject and request
// id (or, in a consumer, the delivery's subject, sequence, delivery count
// and event id), and the trace_id and span_id when the request or delivery
// is traced. Outside those it returns a logger that discards.
func LoggerFrom(ctx context.Context) *slog.Logger {
	switch l := ctx.Value(loggerKey{}).(type) {
	case *slog.Logger:
		return l
	case *lazyLogger:
		return l.get()
	}
	return slog.New(slog.DiscardHandler)
}

// panicked logs a recovered panic value once, with its stack, on the
// scoped logger of ctx, and returns it as an error (a panicError, which
// the metrics count). The request side (Recover) and the consumer side
// share it.
func panicked(ctx context.Context, v any) error {
	LoggerFrom(ctx).LogAttrs(ctx, slog.LevelError, "handler panicked",
		slog.String("panic", fmt.Sprint(v)),
		slog.String("stack", string(debug.Stack())))
	return panicError{fmt.Sprint(v)}
}

// panicError is a recovered panic.
type panicError struct{ value string }

func (p panicError) Error() string { return "panic: " + p.value }
