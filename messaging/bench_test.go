package messaging_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
)

// benchText makes the echo payload {"text":"…"} 64 bytes of JSON.
const benchText = "hello, switchboard! a small JSON echo payload of 64 b"

type benchEcho struct {
	Text string `json:"text"`
}

// BenchmarkEcho compares a typed echo endpoint (messaging.Endpoint called
// with messaging.Request) with the same echo written against nats.go micro
// directly, over in-process and TCP connections. The service and the client
// have connections of their own, as in production. See docs/performance.md.
func BenchmarkEcho(b *testing.B) {
	payload, err := json.Marshal(benchEcho{Text: benchText})
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		// serve starts the echo service on nc and returns its subject.
		serve func(b *testing.B, nc *nats.Conn) string
		// caller returns one echo request on nc.
		caller func(b *testing.B, nc *nats.Conn, subject string) func(context.Context) error
	}{
		{
			name: "raw-micro",
			serve: func(b *testing.B, nc *nats.Conn) string {
				benchRawEcho(b, nc, "raw.echo")
				return "raw.echo"
			},
			caller: func(_ *testing.B, nc *nats.Conn, subject string) func(context.Context) error {
				return func(context.Context) error {
					reply, err := nc.Request(subject, payload, 5*time.Second)
					if err != nil {
						return err
					}
					if !bytes.Equal(reply.Data, payload) {
						return fmt.Errorf("echo: got %q", reply.Data)
					}
					return nil
				}
			},
		},
		{
			name: "typed",
			serve: func(b *testing.B, nc *nats.Conn) string {
				newService(b, nc, messaging.ServiceConfig{Name: "typed"},
					messaging.Endpoint("echo", func(_ context.Context, req benchEcho) (benchEcho, error) {
						return req, nil
					}))
				return "typed.echo"
			},
			caller: func(b *testing.B, nc *nats.Conn, subject string) func(context.Context) error {
				client := newClient(b, nc)
				return func(ctx context.Context) error {
					resp, err := messaging.Request[benchEcho, benchEcho](ctx, client, subject, benchEcho{Text: benchText})
					if err != nil {
						return err
					}
					if resp.Text != benchText {
						return fmt.Errorf("echo: got %q", resp.Text)
					}
					return nil
				}
			},
		},
	}
	transports := []struct {
		name string
		tcp  bool
	}{
		{name: "inproc"},
		{name: "tcp", tcp: true},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for _, tr := range transports {
				b.Run(tr.name, func(b *testing.B) {
					srv := startServer(b)
					subject := v.serve(b, benchConnect(b, srv, "bench-service", tr.tcp))
					call := v.caller(b, benchConnect(b, srv, "bench-client", tr.tcp), subject)
					if err := call(b.Context()); err != nil {
						b.Fatalf("first request: %v", err)
					}
					for _, c := range []int{1, 16, 128} {
						b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { benchLoad(b, c, call, benchSelfCPU) })
					}
				})
			}
		})
	}
}

// benchRawEcho serves subject with a plain micro endpoint that answers each
// request with its own payload, on micro's single delivery goroutine.
func benchRawEcho(b *testing.B, nc *nats.Conn, subject string) {
	b.Helper()
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "rawecho",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		},
	})
	if err != nil {
		b.Fatalf("raw echo service: %v", err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
}

// benchConnect opens a connection to srv named name: over TCP to its client
// URL, or in-process.
func benchConnect(b *testing.B, srv *embedded.Server, name string, tcp bool) *nats.Conn {
	b.Helper()
	var nc *nats.Conn
	var err error
	if tcp {
		nc, err = nats.Connect(srv.ClientURL(), nats.Name(name))
	} else {
		nc, err = srv.Connect(name)
	}
	if err != nil {
		b.Fatalf("connect %s: %v", name, err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// benchLoad makes b.N calls from c concurrent workers and reports the
// throughput, the 50th and 99th percentile latencies and, where cpu can
// tell, the CPU time spent per call. Any failed call fails the benchmark:
// a failure is a bug, not slowness.
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
		// Contention from other processes stretches wall-clock figures but
		// barely moves this one, so it compares variants more reliably.
		b.ReportMetric(benchMicros(cpu1-cpu0)/float64(b.N), "cpu-µs/op")
	}
}

// benchPercentile is the nearest-rank q-quantile of sorted latencies.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func benchMicros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// benchProcessCPU returns the user and system CPU time process pid has used
// ("self": this one), from /proc; false where there is no /proc.
func benchProcessCPU(pid string) (time.Duration, bool) {
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

func benchSelfCPU() (time.Duration, bool) { return benchProcessCPU("self") }
