package messaging_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/messaging"
)

// TestTypedEndpointAllocationBudget guards the allocation budget of
// goal 1 in docs/performance.md: a call of a typed echo endpoint allocates
// at most 10 times more than the same call of a raw micro handler that
// decodes and encodes the request by hand (BenchmarkEcho's baseline). Both
// are counted in this process (caller, server and service) in the same
// run. Allocations are counted, not timed, so the check holds on a loaded
// machine.
func TestTypedEndpointAllocationBudget(t *testing.T) {
	const budget = 10
	srv := startServer(t)
	svc := connect(t, srv)
	raw, err := benchload.ServeJSONEcho[benchEcho](svc, "jsonecho", "raw.echo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Stop() })
	newService(t, svc, messaging.ServiceConfig{Name: "typed"},
		messaging.Typed("echo", func(_ context.Context, req benchEcho) (benchEcho, error) { return req, nil }))
	nc := connect(t, srv)
	payload, err := json.Marshal(benchEcho{Text: benchText})
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(subject string) float64 {
		var failed error
		call := func() {
			reply, err := nc.Request(subject, payload, 5*time.Second)
			if err != nil {
				failed = err
				return
			}
			var resp benchEcho
			if err := json.Unmarshal(reply.Data, &resp); err != nil || resp.Text != benchText {
				failed = err
			}
		}
		for range 200 { // workers started, pools filled
			call()
		}
		n := testing.AllocsPerRun(2000, call)
		if failed != nil {
			t.Fatalf("call %s: %v", subject, failed)
		}
		return n
	}
	base, typed := allocs("raw.echo"), allocs("typed.echo")
	t.Logf("allocations per call: raw %.1f, typed %.1f", base, typed)
	if typed > base+budget {
		t.Errorf("a typed call allocates %.1f times against the raw handler's %.1f: more than %d over the baseline", typed, base, budget)
	}
}
