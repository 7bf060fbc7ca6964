package wire_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/devloop/switchboard/wire"
)

func TestErrorOf(t *testing.T) {
	domain := errors.New("users: email taken")
	tests := []struct {
		name        string
		given       error
		wantCode    int
		wantMessage string
	}{
		{"an *Error is itself", wire.NewError(wire.CodeConflict, "stale"), 409, "stale"},
		{"a wrapped *Error", fmt.Errorf("ctx: %w", wire.NewError(wire.CodeNotFound, "gone")), 404, "gone"},
		{"a wrapped sentinel keeps the whole text", fmt.Errorf("order %q: %w", "o1", wire.ErrNotFound), 404, `order "o1": not found`},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), 504, "deadline exceeded"},
		{"cancelled", context.Canceled, 503, "request cancelled"},
		{"no code hides the text", fmt.Errorf("sql: %w", domain), 500, "internal error"},
		{"the outermost of two sentinels decides", fmt.Errorf("a: %w", fmt.Errorf("b: %w: %w", wire.ErrConflict, wire.ErrNotFound)), 409, "a: b: conflict: not found"},
		{"joined errors are walked in order", errors.Join(domain, wire.ErrUnavailable, wire.ErrNotFound), 503, "users: email taken\nservice unavailable\nnot found"},
		{"an *Error before a sentinel", fmt.Errorf("%w %w", wire.NewError(wire.CodeTooLarge, "big"), wire.ErrNotFound), 413, "big"},
		{"422", fmt.Errorf("key reused: %w", wire.ErrUnprocessable), 422, "key reused: unprocessable request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The same answer every time: no map iteration decides.
			for range 50 {
				e := wire.ErrorOf(tt.given)
				if e.Code != tt.wantCode || e.Message != tt.wantMessage {
					t.Fatalf("ErrorOf = %d %q, want %d %q", e.Code, e.Message, tt.wantCode, tt.wantMessage)
				}
			}
		})
	}
	// A mapped error keeps the original as its local cause.
	cause := fmt.Errorf("sql: %w", domain)
	if !errors.Is(wire.ErrorOf(cause), domain) {
		t.Error("the 500 made of an uncoded error lost its cause")
	}
	if !errors.Is(wire.ErrorOf(fmt.Errorf("read: %w", context.DeadlineExceeded)), context.DeadlineExceeded) {
		t.Error("the 504 lost context.DeadlineExceeded")
	}
	if wire.ErrorOf(nil) != nil {
		t.Error("ErrorOf(nil) is not nil")
	}
}

func TestErrorMatchesItsSentinelOnly(t *testing.T) {
	e := wire.NewError(wire.CodeNotFound, "x")
	if !errors.Is(e, wire.ErrNotFound) || errors.Is(e, wire.ErrConflict) {
		t.Errorf("errors.Is on a 404: NotFound %v, Conflict %v", errors.Is(e, wire.ErrNotFound), errors.Is(e, wire.ErrConflict))
	}
	odd := wire.NewError(418, "teapot")
	for _, s := range []error{wire.ErrBadRequest, wire.ErrInternal} {
		if errors.Is(odd, s) {
			t.Errorf("a 418 matches %v", s)
		}
	}
}

func TestParseDeadline(t *testing.T) {
	if _, err := wire.ParseDeadline("tomorrow"); !errors.Is(err, wire.ErrBadRequest) {
		t.Errorf("ParseDeadline(tomorrow) = %v, want a 400", err)
	}
	d, err := wire.ParseDeadline("2026-01-02T03:04:05.123456789Z")
	if err != nil || d.Nanosecond() != 123456789 {
		t.Errorf("ParseDeadline = %v, %v", d, err)
	}
}

func TestPositions(t *testing.T) {
	p, err := wire.ParsePositions(" USERS=12, ORDERS=7,USERS=3 ")
	if err != nil || p["USERS"] != 12 || p["ORDERS"] != 7 {
		t.Fatalf("parse = %v, %v", p, err)
	}
	p.Merge(wire.Positions{"ORDERS": 9, "X": 1})
	if got := p.String(); got != "ORDERS=9,USERS=12,X=1" {
		t.Fatalf("String = %q", got)
	}
	for _, bad := range []string{"USERS", "USERS=x", "=4", "USERS=-1"} {
		if _, err := wire.ParsePositions(bad); !errors.Is(err, wire.ErrBadRequest) {
			t.Errorf("ParsePositions(%q) = %v, want a 400", bad, err)
		}
	}
	ctx := wire.WithPositions(context.Background(), p)
	if wire.After(ctx, "USERS") != 12 || wire.After(context.Background(), "USERS") != 0 {
		t.Fatal("After does not read the context's positions")
	}
}

func TestCodeOf(t *testing.T) {
	if got := wire.CodeOf(nil); got != 0 {
		t.Errorf("CodeOf(nil) = %d, want 0", got)
	}
	if got := wire.CodeOf(fmt.Errorf("user 1: %w", wire.ErrNotFound)); got != wire.CodeNotFound {
		t.Errorf("CodeOf(wrapped not found) = %d, want 404", got)
	}
	if got := wire.CodeOf(errors.New("boom")); got != wire.CodeInternal {
		t.Errorf("CodeOf(plain error) = %d, want 500", got)
	}
}
