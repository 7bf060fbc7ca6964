package benchload

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// Batch is one side of a comparison of work done in bulk, such as
// consuming n stored messages or publishing n messages asynchronously,
// where single operations have no latency of their own to measure.
type Batch struct {
	Name string
	// Prepare readies a round of n operations, off the clock (for
	// instance publishes the messages a consumer will drain), and returns
	// the round: run does the n operations and returns once all are done.
	Prepare func(ctx context.Context, n int) (run func(context.Context) error, err error)
}

// CompareBatch is Compare for batches: n operations of baseline and n of
// ours, in alternating rounds, reporting both sides' throughput, CPU and
// allocations per operation and the ratio of throughputs. There is no
// latency per operation, so no p99.
func CompareBatch(b *testing.B, n int, baseline, ours Batch, cpu func() (time.Duration, bool)) {
	b.Helper()
	var base, mine []result
	for range rounds {
		base = append(base, measureBatch(b, n/rounds, baseline, cpu))
		mine = append(mine, measureBatch(b, n/rounds, ours, cpu))
	}
	reportPair(b, baseline.Name, ours.Name, summarizeBatch(base, n/rounds), summarizeBatch(mine, n/rounds))
}

// measureBatch prepares and times one round of n operations of side.
func measureBatch(b *testing.B, n int, side Batch, cpu func() (time.Duration, bool)) result {
	b.Helper()
	ctx := b.Context()
	run, err := side.Prepare(ctx, n)
	if err != nil {
		b.Fatalf("%s: prepare %d operations: %v", side.Name, n, err)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, cpuOK := cpu()
	start := time.Now()
	err = run(ctx)
	elapsed := time.Since(start)
	cpu1, _ := cpu()
	runtime.ReadMemStats(&m1)
	if err != nil {
		b.Fatalf("%s: %v", side.Name, err)
	}
	r := result{elapsed: elapsed, allocs: m1.Mallocs - m0.Mallocs}
	if cpuOK {
		r.cpu = cpu1 - cpu0
	}
	return r
}

func summarizeBatch(rs []result, perRound int) summary {
	var elapsed, cpu time.Duration
	var allocs uint64
	for _, r := range rs {
		elapsed += r.elapsed
		cpu += r.cpu
		allocs += r.allocs
	}
	n := max(perRound*len(rs), 1)
	return summary{
		opsPerSec:     float64(n) / elapsed.Seconds(),
		cpuPerCall:    cpu / time.Duration(n),
		allocsPerCall: float64(allocs) / float64(n),
	}
}
