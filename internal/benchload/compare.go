package benchload

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Side is one side of a comparison: a name and one call.
type Side struct {
	Name string
	Call func(context.Context) error
}

// result is what one round of calls measured.
type result struct {
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration
	allocs  uint64
}

// Compare makes n calls of baseline and n of ours from c concurrent
// workers, in alternating rounds so that both see the same machine, and
// reports both sides' throughput, p99 latency, CPU and allocations per
// call, and their ratios (ours over baseline: above 1 is ours faster for
// throughput, below 1 is ours cheaper for CPU). The figures are measured,
// never asserted: see docs/performance.md. cpu reads the CPU time of the
// processes involved (SelfCPU when everything runs in this one).
func Compare(b *testing.B, c, n int, baseline, ours Side, cpu func() (time.Duration, bool)) {
	b.Helper()
	compare(b, c, n, baseline, ours, cpu, nil)
}

// compare runs Compare's alternating rounds, calling after (when set)
// once each round ended, with whether it was ours.
func compare(b *testing.B, c, n int, baseline, ours Side, cpu func() (time.Duration, bool), after func(ours bool)) {
	b.Helper()
	var base, mine []result
	for range rounds {
		base = append(base, measure(b, c, n/rounds, baseline.Call, cpu))
		if after != nil {
			after(false)
		}
		mine = append(mine, measure(b, c, n/rounds, ours.Call, cpu))
		if after != nil {
			after(true)
		}
	}
	bs, os := summarize(base), summarize(mine)
	reportPair(b, baseline.Name, ours.Name, bs, os)
}

// rounds is how many rounds of each side a comparison alternates.
const rounds = 3

// Part is one process of a set-up, whose CPU [CompareParts] reports apart.
type Part struct {
	Name string
	CPU  func() (time.Duration, bool)
}

// CompareParts is [Compare] for a set-up of several processes: besides
// the total, it reports each part's CPU per call
// ("base.X-cpu-<part>-µs/op", "ours.Y-cpu-<part>-µs/op"), so that a gap
// is placed in the process where it is spent. The total is the sum of
// the parts.
func CompareParts(b *testing.B, c, n int, baseline, ours Side, parts []Part) {
	b.Helper()
	// measureCalls reads cpu once before a round's calls and once after:
	// the last two reads are the round's.
	var before, last []time.Duration
	cpu := func() (time.Duration, bool) {
		read := make([]time.Duration, len(parts))
		var total time.Duration
		ok := true
		for i, p := range parts {
			d, pok := p.CPU()
			read[i], total, ok = d, total+d, ok && pok
		}
		before, last = last, read
		return total, ok
	}
	spentBase, spentOurs := make([]time.Duration, len(parts)), make([]time.Duration, len(parts))
	var calls int
	compare(b, c, n, baseline, ours, cpu, func(isOurs bool) {
		spent := spentBase
		if isOurs {
			spent = spentOurs
		} else {
			calls += n / rounds
		}
		for i := range parts {
			spent[i] += last[i] - before[i]
		}
	})
	per := time.Duration(max(calls, 1))
	for i, p := range parts {
		b.ReportMetric(Micros(spentBase[i]/per), BasePrefix+baseline.Name+"-cpu-"+p.Name+"-µs/op")
		b.ReportMetric(Micros(spentOurs[i]/per), OursPrefix+ours.Name+"-cpu-"+p.Name+"-µs/op")
	}
}

// Metric units of a comparison. The side's role comes first, so that a
// reader of the output (internal/benchtable) tells baseline from ours
// whatever the sides are called: "base.raw-ops/s", "ours.typed-ops/s".
const (
	BasePrefix = "base."
	OursPrefix = "ours."
)

// reportPair reports both sides' figures and their ratios.
func reportPair(b *testing.B, baseName, oursName string, bs, os summary) {
	b.Helper()
	report := func(unit string, v float64) { b.ReportMetric(v, unit) }
	base, ours := BasePrefix+baseName, OursPrefix+oursName
	report("ns/op", 0)
	report(base+"-ops/s", bs.opsPerSec)
	report(ours+"-ops/s", os.opsPerSec)
	report("ratio-ops/s", os.opsPerSec/bs.opsPerSec)
	if bs.p99 > 0 && os.p99 > 0 {
		report(base+"-p99-µs", Micros(bs.p99))
		report(ours+"-p99-µs", Micros(os.p99))
		report("ratio-p99", float64(bs.p99)/float64(os.p99))
	}
	if bs.cpuPerCall > 0 {
		report(base+"-cpu-µs/op", Micros(bs.cpuPerCall))
		report(ours+"-cpu-µs/op", Micros(os.cpuPerCall))
	}
	report(base+"-allocs/op", bs.allocsPerCall)
	report(ours+"-allocs/op", os.allocsPerCall)
}

type summary struct {
	opsPerSec     float64
	p99           time.Duration
	cpuPerCall    time.Duration
	allocsPerCall float64
}

func summarize(rs []result) summary {
	var elapsed, cpu time.Duration
	var allocs uint64
	var lat []time.Duration
	for _, r := range rs {
		elapsed += r.elapsed
		cpu += r.cpu
		allocs += r.allocs
		lat = append(lat, r.lat...)
	}
	slices.Sort(lat)
	n := len(lat)
	return summary{
		opsPerSec:     float64(n) / elapsed.Seconds(),
		p99:           percentile(lat, 0.99),
		cpuPerCall:    cpu / time.Duration(max(n, 1)),
		allocsPerCall: float64(allocs) / float64(max(n, 1)),
	}
}

// Figures are what Measure measured.
type Figures struct {
	OpsPerSec   float64
	P50, P99    time.Duration
	CPUPerOp    time.Duration // 0 when cpu could not tell
	AllocsPerOp float64       // of this process
}

// Measure makes n calls from c concurrent workers and returns what they
// measured, for benchmarks that report several measurements of their own
// (BenchmarkUsersScale) rather than one comparison. Any failed call is the
// error.
func Measure(ctx context.Context, c, n int, call func(context.Context) error, cpu func() (time.Duration, bool)) (Figures, error) {
	r, err := measureCalls(ctx, c, n, call, cpu)
	if err != nil {
		return Figures{}, err
	}
	s := summarize([]result{r})
	return Figures{
		OpsPerSec: s.opsPerSec, P50: percentile(r.lat, 0.50), P99: s.p99,
		CPUPerOp: s.cpuPerCall, AllocsPerOp: s.allocsPerCall,
	}, nil
}

// measure makes n calls from c workers, failing b when one fails.
func measure(b *testing.B, c, n int, call func(context.Context) error, cpu func() (time.Duration, bool)) result {
	b.Helper()
	r, err := measureCalls(b.Context(), c, n, call, cpu)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// measureCalls makes n calls from c workers; r.lat comes sorted.
func measureCalls(ctx context.Context, c, n int, call func(context.Context) error, cpu func() (time.Duration, bool)) (result, error) {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	perWorker := make([][]time.Duration, c)
	var wg sync.WaitGroup
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, cpuOK := cpu()
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/c+1)
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
				lat = append(lat, time.Since(t0))
			}
			perWorker[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := cpu()
	runtime.ReadMemStats(&m1)
	if err := failed.Load(); err != nil {
		return result{}, fmt.Errorf("a call failed: %w", *err)
	}
	r := result{elapsed: elapsed, lat: slices.Concat(perWorker...), allocs: m1.Mallocs - m0.Mallocs}
	slices.Sort(r.lat)
	if cpuOK {
		r.cpu = cpu1 - cpu0
	}
	return r, nil
}
