package wire_test

import (
	"context"
	"errors"
	"testing"

	"github.com/devloop/switchboard/wire"
)

// scoped is a server context that carries a request's id and positions in
// one node, as messaging's request scope does.
type scoped struct {
	context.Context
	id    string
	after wire.AfterHeader
}

func (s *scoped) Value(key any) any {
	if v, ok := wire.ScopeValue(key, s.id, &s.after); ok {
		return v
	}
	return s.Context.Value(key)
}

// TestAfterHeader: a context carrying an AfterHeader answers After,
// PositionsFrom and RequestID as WithPositions and WithRequestID would,
// for the header's text, and a context made under it still overrides it.
func TestAfterHeader(t *testing.T) {
	parent := wire.WithPositions(context.Background(), wire.Positions{"OUTER": 1})
	ctx := &scoped{Context: parent, id: "req-1"}
	// No header: the parent's positions show through.
	if got := wire.PositionsFrom(ctx).String(); got != "OUTER=1" || wire.After(ctx, "OUTER") != 1 {
		t.Fatalf("without a header: positions %q", got)
	}
	for _, bad := range []string{"USERS", "USERS=x", "=4", "USERS=-1", "USERS=1,ORDERS"} {
		if err := ctx.after.Set(bad); !errors.Is(err, wire.ErrBadRequest) {
			t.Errorf("Set(%q) = %v, want a 400", bad, err)
		}
	}
	if err := ctx.after.Set(" USERS=12, ORDERS=7,USERS=3 ,"); err != nil {
		t.Fatal(err)
	}
	if wire.After(ctx, "USERS") != 12 || wire.After(ctx, "ORDERS") != 7 || wire.After(ctx, "OUTER") != 0 {
		t.Errorf("After = %d, %d, %d; want 12, 7 and 0 (the header replaces the parent's)",
			wire.After(ctx, "USERS"), wire.After(ctx, "ORDERS"), wire.After(ctx, "OUTER"))
	}
	if got := wire.PositionsFrom(ctx).String(); got != "ORDERS=7,USERS=12" {
		t.Errorf("PositionsFrom = %q", got)
	}
	if wire.RequestID(ctx) != "req-1" {
		t.Errorf("RequestID = %q", wire.RequestID(ctx))
	}
	inner := wire.WithPositions(ctx, wire.Positions{"USERS": 99})
	if wire.After(inner, "USERS") != 99 {
		t.Errorf("a WithPositions under the scope: After = %d, want 99", wire.After(inner, "USERS"))
	}
}
