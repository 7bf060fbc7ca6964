// Package benchload is the load harness of Switchboard's benchmarks: it
// makes b.N calls from c concurrent workers and reports throughput, latency
// percentiles and CPU per call, so every benchmark reports the same figures
// the same way (docs/performance.md).
package benchload

import (
	"bytes"
	"context"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Run makes b.N calls from c concurrent workers and reports the
// throughput, the 50th and 99th percentile latencies and, where cpu can
// tell, the CPU time spent per call. Any failed call fails the benchmark:
// a failure is a bug, not slowness.
func Run(b *testing.B, c int, call func(context.Context) error, cpu func() (time.Duration, bool)) {
	b.Helper()
	b.ReportAllocs()
	ctx := b.Context()
	var (
		next     atomic.Int64
		failed   atomic.Int64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	perWorker := make([][]time.Duration, c)
	b.ResetTimer()
	cpu0, cpuOK := cpu()
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			lat := make([]time.Duration, 0, b.N/c+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				err := call(ctx)
				lat = append(lat, time.Since(t0))
				if err != nil && failed.Add(1) == 1 {
					firstErr.Store(&err)
				}
			}
			perWorker[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := cpu()
	b.StopTimer()

	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, *firstErr.Load())
	}
	lat := slices.Concat(perWorker...)
	slices.Sort(lat)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(Micros(percentile(lat, 0.50)), "p50-µs")
	b.ReportMetric(Micros(percentile(lat, 0.99)), "p99-µs")
	if cpuOK {
		// Contention from other processes stretches wall-clock figures but
		// barely moves this one, so it compares variants more reliably.
		b.ReportMetric(Micros(cpu1-cpu0)/float64(b.N), "cpu-µs/op")
	}
}

// percentile is the nearest-rank q-quantile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// Micros converts d to microseconds, for b.ReportMetric.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// ProcessCPU returns the user and system CPU time process pid has used
// ("self": this one), from /proc; false where there is no /proc.
func ProcessCPU(pid string) (time.Duration, bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The fields after "pid (comm)" start with state, the 3rd field;
	// utime and stime are the 14th and 15th, in clock ticks of 1/100 s.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// SelfCPU is ProcessCPU of this process.
func SelfCPU() (time.Duration, bool) { return ProcessCPU("self") }
