package messaging

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/wire"
)

// Logging logs each request once it is answered, with its subject, endpoint,
// request id, trace and span ids (when traced), duration and status code: server errors (5xx) at Error,
// everything else at Debug. It also puts a request-scoped logger carrying
// those attributes into the context (see [LoggerFrom]) and makes sure the
// context carries a request id, so downstream calls share it.
func Logging(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) (*wire.Reply, error) {
			id := header(req.Header, wire.HeaderRequestID)
			if id == "" {
				id = nuid.Next()
			}
			sc := req.scope(ctx, logger, id)
			if v := header(req.Header, wire.HeaderAfter); v != "" {
				if err := sc.after.Set(v); err != nil {
					return nil, err
				}
			}
			ctx = sc
			resp, err := next.Serve(ctx, req)
			status := 200
			level := slog.LevelDebug
			if err != nil {
				status = wire.ErrorOf(err).Code
				if status >= 500 {
					level = slog.LevelError
				}
			}
			if logger.Enabled(ctx, level) {
				attrs := append(append(sc.logAttrs(), traceAttrs(trace.SpanContextFromContext(ctx))...),
					slog.Duration("duration", time.Since(req.Received)), slog.Int("status", status))
				if level == slog.LevelError {
					attrs = append(attrs, slog.String("error", err.Error()))
				}
				logger.Log(ctx, level, "request", attrs...)
			}
			return resp, err
		})
	}
}

// Recover turns a handler panic into a 500 reply, logging the panic value and
// stack once; the service keeps serving.
func Recover() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) (resp *wire.Reply, err error) {
			defer func() {
				if v := recover(); v != nil {
					resp, err = nil, wire.NewError(wire.CodeInternal, "internal error").WithCause(panicked(ctx, v))
				}
			}()
			return next.Serve(ctx, req)
		})
	}
}

// Deadline gives the handler a context that ends at the caller's deadline
// (the [wire.HeaderDeadline] header), or after max when the request carries
// none or a later one. A request whose deadline has already passed is
// answered 504 without calling the handler: nobody is waiting for the
// result. The context starts its timer only when a handler waits on it
// (calls Done): a handler that answers from memory pays for none.
func Deadline(max time.Duration) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) (*wire.Reply, error) {
			deadline := req.Received.Add(max)
			if v := header(req.Header, wire.HeaderDeadline); v != "" {
				t, err := wire.ParseDeadline(v)
				if err != nil {
					return nil, err
				}
				if t.Before(deadline) {
					deadline = t
				}
			}
			if !time.Now().Before(deadline) {
				return nil, wire.NewError(wire.CodeDeadlineExceeded, "deadline exceeded before the request was handled")
			}
			dctx := deadlineUnder(ctx, deadline, &req.dl)
			defer dctx.release()
			return next.Serve(dctx, req)
		})
	}
}

// deadlineUnder makes into (or, when into is nil or in use already, a
// new one) a deadline context under ctx that ends at deadline, or at ctx's
// own deadline when that is sooner. Requests, deliveries and batches bound
// their handlers with it; release it once the handler returned.
func deadlineUnder(ctx context.Context, deadline time.Time, into *deadlineCtx) *deadlineCtx {
	if into == nil || into.Context != nil {
		into = new(deadlineCtx)
	}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	into.Context, into.deadline = ctx, deadline
	return into
}

// deadlineCtx is context.WithDeadline whose timer starts when Done is
// first called, not when it is made. A request's lives in its Request, so
// it costs no allocation of its own.
type deadlineCtx struct {
	context.Context
	deadline time.Time

	mu       sync.Mutex
	done     chan struct{}
	err      error
	timer    *time.Timer
	stopWait func() bool
	released bool
	afters   map[*func()]struct{} // AfterFunc's, until done
}

// AfterFunc arranges for f to run in its own goroutine once c is done, as
// context.AfterFunc does, and returns a function that stops that. A
// context made under c (context.WithCancel, WithTimeout) registers with c
// this way: without the method, the context package would start a
// goroutine per such context to wait for c.
func (c *deadlineCtx) AfterFunc(f func()) (stop func() bool) {
	c.Done() // arms the timer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	if c.afters == nil {
		c.afters = make(map[*func()]struct{})
	}
	key := &f
	c.afters[key] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[key]
		delete(c.afters, key)
		return ok
	}
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.released {
			c.cancelLocked(context.Canceled)
		} else if d := time.Until(c.deadline); d <= 0 {
			c.cancelLocked(context.DeadlineExceeded)
		} else {
			c.timer = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) })
			c.stopWait = context.AfterFunc(c.Context, func() { c.cancel(c.Context.Err()) })
		}
	}
	return c.done
}

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return c.err
	case c.Context.Err() != nil:
		return c.Context.Err()
	case !time.Now().Before(c.deadline):
		return context.DeadlineExceeded
	}
	return nil
}

func (c *deadlineCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(err)
}

func (c *deadlineCtx) cancelLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
	for f := range c.afters {
		go (*f)()
	}
	c.afters = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopWait != nil {
		c.stopWait()
	}
}

// release ends the context once the handler returned, as cancel does for
// context.WithDeadline, freeing its timer.
func (c *deadlineCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.done != nil {
		c.cancelLocked(context.Canceled)
	}
}
