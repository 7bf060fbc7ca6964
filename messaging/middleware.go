package messaging

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nuid"

	"github.com/devloop/switchboard/wire"
)

// Logging logs each request once it is answered, with its subject, endpoint,
// request id, duration and status code: server errors (5xx) at Error,
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
			attrs := []any{
				slog.String("service", req.Service),
				slog.String("endpoint", req.Endpoint),
				slog.String("subject", req.Subject),
				slog.String("request_id", id),
			}
			ctx = withLogScope(wire.WithRequestID(ctx, id), logger, attrs...)
			if v := header(req.Header, wire.HeaderAfter); v != "" {
				p, err := wire.ParsePositions(v)
				if err != nil {
					return nil, err
				}
				ctx = wire.WithPositions(ctx, p)
			}
			resp, err := next.Serve(ctx, req)
			status := 200
			level := slog.LevelDebug
			var errAttr []any
			if err != nil {
				e := wire.ErrorOf(err)
				status = e.Code
				if status >= 500 {
					level = slog.LevelError
					errAttr = []any{slog.String("error", err.Error())}
				}
			}
			if logger.Enabled(ctx, level) {
				attrs = append(attrs, slog.Duration("duration", time.Since(req.Received)), slog.Int("status", status))
				logger.Log(ctx, level, "request", append(attrs, errAttr...)...)
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
// (the [HeaderDeadline] header), or after max when the request carries none
// or a later one. A request whose deadline has already passed is answered
// 504 without calling the handler: nobody is waiting for the result.
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
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			return next.Serve(ctx, req)
		})
	}
}
