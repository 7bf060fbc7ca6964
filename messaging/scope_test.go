package messaging_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

type parentKey struct{}

// TestRequestScope checks that the one context node Logging puts under a
// request's handlers answers as the WithValue calls it replaced did: the
// request, its id, the caller's positions and the scoped logger, with the
// parent's values and cancellation still reaching the handler. Two
// Logging layers in one chain each get a scope.
func TestRequestScope(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, layers := range []int{1, 2} {
		logs.Reset()
		req := &messaging.Request{
			Service: "svc", Endpoint: "ep", Subject: "svc.ep",
			Header: nats.Header{wire.HeaderRequestID: {"req-1"}, wire.HeaderAfter: {"USERS=7"}},
		}
		var seen struct {
			req       *messaging.Request
			id        string
			positions string
			parent    any
			cancelled bool
		}
		parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), parentKey{}, "parent's"))
		h := messaging.HandlerFunc(func(ctx context.Context, _ *messaging.Request) (*wire.Reply, error) {
			seen.req, _ = messaging.RequestFromContext(ctx)
			seen.id = wire.RequestID(ctx)
			seen.positions = wire.PositionsFrom(ctx).String()
			seen.parent = ctx.Value(parentKey{})
			messaging.LoggerFrom(ctx).Info("in the handler")
			// A context made under the scope still hears the parent's
			// cancellation.
			child, stop := context.WithCancel(ctx)
			defer stop()
			cancelParent()
			select {
			case <-child.Done():
				seen.cancelled = true
			case <-time.After(5 * time.Second):
			}
			return &wire.Reply{}, nil
		})
		mw := []messaging.Middleware{}
		for range layers {
			mw = append(mw, messaging.Logging(logger))
		}
		if _, err := messaging.Chain(h, mw...).Serve(parent, req); err != nil {
			t.Fatalf("%d layers: Serve: %v", layers, err)
		}
		if seen.req != req || seen.id != "req-1" || seen.positions != "USERS=7" || seen.parent != "parent's" || !seen.cancelled {
			t.Errorf("%d layers: the handler saw %+v", layers, seen)
		}
		if got := logs.String(); !strings.Contains(got, "request_id=req-1") || !strings.Contains(got, "endpoint=ep") {
			t.Errorf("%d layers: the scoped logger wrote %q, want the request's attributes", layers, got)
		}
	}
}

// TestRequestScopeWithoutPositions: a request without an After header
// leaves the parent's positions visible, as before.
func TestRequestScopeWithoutPositions(t *testing.T) {
	parent := wire.WithPositions(context.Background(), wire.Positions{"ORDERS": 3})
	var got string
	h := messaging.HandlerFunc(func(ctx context.Context, _ *messaging.Request) (*wire.Reply, error) {
		got = wire.PositionsFrom(ctx).String()
		return &wire.Reply{}, nil
	})
	req := &messaging.Request{Header: nats.Header{}}
	if _, err := messaging.Chain(h, messaging.Logging(slog.New(slog.DiscardHandler))).Serve(parent, req); err != nil {
		t.Fatal(err)
	}
	if got != "ORDERS=3" {
		t.Fatalf("positions = %q, want the parent's ORDERS=3", got)
	}
}

// TestRequestStateTwice: a request keeps its deadline context and its
// typed reply in the Request, once; two Deadline layers, and a middleware
// that calls its handler twice, each still get their own.
func TestRequestStateTwice(t *testing.T) {
	type echo struct {
		N int `json:"n"`
	}
	calls := 0
	ep := messaging.Typed("echo", func(ctx context.Context, in echo) (echo, error) {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			return echo{}, errors.New("no deadline")
		}
		return echo{N: in.N + calls}, nil
	})
	var first *wire.Reply
	twice := func(next messaging.Handler) messaging.Handler {
		return messaging.HandlerFunc(func(ctx context.Context, r *messaging.Request) (*wire.Reply, error) {
			var err error
			if first, err = next.Serve(ctx, r); err != nil {
				return nil, err
			}
			return next.Serve(ctx, r)
		})
	}
	h := messaging.Chain(messaging.EndpointHandler(ep), messaging.Deadline(time.Minute), messaging.Deadline(time.Hour), twice)
	req := &messaging.Request{Data: []byte(`{"n":10}`), Received: time.Now()}
	second, err := h.Serve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if first == second || string(first.Data) != `{"n":11}` || string(second.Data) != `{"n":12}` {
		t.Fatalf("replies %p %q and %p %q, want two of their own", first, first.Data, second, second.Data)
	}
}

// TestDeadlineChildren: contexts a handler makes under its deadline
// register with it rather than each starting a goroutine to wait for it
// (the deadline context has an AfterFunc method, which the context
// package looks for), and still end with the deadline, as
// DeadlineExceeded, or when cancelled.
func TestDeadlineChildren(t *testing.T) {
	const children = 50
	var grew int
	var errs []error
	h := messaging.HandlerFunc(func(ctx context.Context, _ *messaging.Request) (*wire.Reply, error) {
		before := runtime.NumGoroutine()
		var kept []context.Context
		for i := range children {
			child, cancel := context.WithCancel(ctx)
			if i%2 == 0 {
				cancel() // stops its registration
				continue
			}
			defer cancel()
			kept = append(kept, child)
		}
		grew = runtime.NumGoroutine() - before
		for _, child := range kept {
			select {
			case <-child.Done():
				errs = append(errs, child.Err())
			case <-time.After(5 * time.Second):
				errs = append(errs, errors.New("not done 5s after its parent's deadline"))
			}
		}
		return &wire.Reply{}, nil
	})
	req := &messaging.Request{Received: time.Now()}
	if _, err := messaging.Chain(h, messaging.Deadline(100*time.Millisecond)).Serve(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if grew >= children/2 {
		t.Errorf("%d contexts under the deadline started %d goroutines, want them to register instead", children, grew)
	}
	for _, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a child ended with %v, want DeadlineExceeded", err)
		}
	}
	if len(errs) != children/2 {
		t.Fatalf("%d children checked, want %d", len(errs), children/2)
	}
}
