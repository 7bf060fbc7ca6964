package orders_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// BenchmarkOrdersCreate measures orders.create on an embedded server with
// the real users service (without a cache) and the orders service, each on
// its own in-process connection, and a client on a third. Every order is
// for one existing user and differs from the others in its SKU; no
// Idempotency-Key is sent. A create asks users.get whether the user exists,
// then appends order.placed to the ORDERS stream. See docs/performance.md.
func BenchmarkOrdersCreate(b *testing.B) {
	client, userID := benchStartOrders(b)
	var seq atomic.Int64
	call := func(ctx context.Context) error {
		req := contract.CreateRequest{
			UserID:   userID,
			Currency: "EUR",
			Items: []contract.Item{
				{SKU: "BENCH-" + strconv.FormatInt(seq.Add(1), 10), Quantity: 2, UnitPriceCents: 1250},
				{SKU: "pen_blue.2", Quantity: 3, UnitPriceCents: 999},
			},
		}
		o, err := messaging.Request[contract.CreateRequest, contract.Order](ctx, client, contract.SubjectCreate, req)
		if err != nil {
			return err
		}
		if o.ID == "" || o.TotalCents != 5497 {
			return fmt.Errorf("create: got order %q with total %d, want an id and 5497", o.ID, o.TotalCents)
		}
		return nil
	}
	for _, c := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { benchLoad(b, c, call, benchSelfCPU) })
	}
}

// benchStartOrders starts an embedded server, users and orders, and
// creates the user the orders are for. Everything stops when b ends.
func benchStartOrders(b *testing.B) (*messaging.Client, string) {
	b.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatalf("start embedded server: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conn := func(name string) *nats.Conn {
		nc, err := srv.Connect("bench-" + name)
		if err != nil {
			b.Fatalf("connect %s: %v", name, err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	us, err := users.Start(ctx, conn("users"), users.Options{})
	if err != nil {
		b.Fatalf("start users: %v", err)
	}
	b.Cleanup(func() { benchStop(us.Stop) })
	osvc, err := orders.Start(ctx, conn("orders"), orders.Options{})
	if err != nil {
		b.Fatalf("start orders: %v", err)
	}
	b.Cleanup(func() { benchStop(osvc.Stop) })
	client, err := messaging.NewClient(conn("client"), messaging.WithTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	age := 36
	u, err := messaging.Request[userscontract.CreateRequest, userscontract.User](ctx, client, userscontract.SubjectCreate,
		userscontract.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.com", Age: &age})
	if err != nil {
		b.Fatalf("create the user to order for: %v", err)
	}
	return client, u.ID
}

func benchStop(stop func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = stop(ctx)
}

// benchLoad makes b.N calls from c concurrent workers and reports the
// throughput, the 50th and 99th percentile latencies and, where cpu can
// tell, the CPU time spent per call. Any failed call fails the benchmark:
// a failure is a bug, not slowness. (The same harness as in
// services/users/bench_test.go: test files cannot share code across
// packages.)
func benchLoad(b *testing.B, c int, call func(context.Context) error, cpu func() (time.Duration, bool)) {
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
	b.ReportMetric(benchMicros(benchPercentile(lat, 0.50)), "p50-µs")
	b.ReportMetric(benchMicros(benchPercentile(lat, 0.99)), "p99-µs")
	if cpuOK {
		b.ReportMetric(benchMicros(cpu1-cpu0)/float64(b.N), "cpu-µs/op")
	}
}

// benchPercentile is the nearest-rank q-quantile of sorted latencies.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func benchMicros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// benchSelfCPU returns the user and system CPU time this process has used,
// from /proc; false where there is no /proc.
func benchSelfCPU() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// utime and stime are the 14th and 15th fields, in 1/100 s ticks.
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
