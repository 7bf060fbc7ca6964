package messaging_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/benchload"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/devloop/switchboard/messaging"
)

// benchPayload is what every benchmark message carries.
var benchPayload = []byte(`{"n":1}`)

type benchThing struct {
	N int `json:"n"`
}

// benchStreams numbers the streams of the publish and consume benchmarks,
// so each run of a benchmark function starts from an empty stream.
var benchStreams atomic.Int64

// benchStream creates a stream of its own on the file store, deleted when
// b's run ends, and returns its name and the subject to publish on.
func benchStream(b *testing.B, js jetstream.JetStream) (name, subject string) {
	b.Helper()
	n := benchStreams.Add(1)
	name = fmt.Sprintf("BENCH_%d", n)
	subject = fmt.Sprintf("bench.%d.thing", n)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{fmt.Sprintf("bench.%d.>", n)},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		b.Fatalf("create stream %s: %v", name, err)
	}
	b.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return name, subject
}

// benchJetStream returns a JetStream context on nc, counting failed
// asynchronous publishes in failed.
func benchJetStream(b *testing.B, nc *nats.Conn, failed *atomic.Int64, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	b.Helper()
	opts = append(opts, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// benchRateReport reports n operations in elapsed as unit/s, and the CPU
// time of this process per operation since cpu0.
func benchRateReport(b *testing.B, n int, elapsed time.Duration, unit string, cpu0 time.Duration, cpuOK bool) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n)/elapsed.Seconds(), unit+"/s")
	if cpu1, ok := benchload.SelfCPU(); ok && cpuOK {
		b.ReportMetric(benchload.Micros(cpu1-cpu0)/float64(n), "cpu-µs/op")
	}
}

// BenchmarkConsume measures how fast b.N stored messages are consumed and
// acknowledged: with a jetstream consumer.Consume callback that acks each
// message ("raw"), and with messaging.Consume and a typed no-op handler
// ("runtime"). Messages ({"n":1}, with a Nats-Msg-Id) are published before
// the timer starts; the clock stops when the consumer's last message is
// acknowledged on the server (ack pending and pending both 0). The longest
// pause between two handled messages is reported as max-gap-ms. See
// docs/performance.md.
func BenchmarkConsume(b *testing.B) {
	srv := startServer(b)
	nc := benchConnect(b, srv, "bench-consume", false)
	var failed atomic.Int64
	js := benchJetStream(b, nc, &failed)

	// prepare publishes b.N messages to a new stream and returns its name.
	prepare := func(b *testing.B) string {
		b.Helper()
		stream, subject := benchStream(b, js)
		for range b.N {
			if _, err := js.PublishAsync(subject, benchPayload, jetstream.WithMsgID(nuid.Next())); err != nil {
				b.Fatalf("publish: %v", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("pre-publish not acknowledged within a minute")
		}
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d pre-published messages failed", n)
		}
		return stream
	}
	// settle waits until the durable has nothing pending or unacknowledged.
	settle := func(b *testing.B, stream, durable string) {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			info, err := js.Consumer(ctx, stream, durable)
			if err == nil {
				ci := info.CachedInfo()
				if ci.NumAckPending == 0 && ci.NumPending == 0 {
					return
				}
			}
			if ctx.Err() != nil {
				b.Fatalf("consumer %s did not settle within a minute (last error: %v)", durable, err)
			}
			time.Sleep(time.Millisecond)
		}
	}

	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		stream := prepare(b)
		var handled atomic.Int64
		var gaps benchGaps
		done := make(chan struct{})
		n := int64(b.N)
		b.ResetTimer()
		cpu0, cpuOK := benchload.SelfCPU()
		start := time.Now()
		gaps.last.Store(start.UnixNano())
		cons, err := js.CreateOrUpdateConsumer(context.Background(), stream, jetstream.ConsumerConfig{
			Durable:   "raw",
			AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			if err := msg.Ack(); err != nil {
				failed.Add(1)
			}
			gaps.tick()
			if handled.Add(1) == n {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		benchWait(b, done, failed.Load)
		settle(b, stream, "raw")
		elapsed := time.Since(start)
		b.StopTimer()
		benchRateReport(b, b.N, elapsed, "msgs", cpu0, cpuOK)
		gaps.report(b)
	})

	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("runtime/workers=%d", workers), func(b *testing.B) {
			b.ReportAllocs()
			stream := prepare(b)
			var handled atomic.Int64
			var gaps benchGaps
			done := make(chan struct{})
			n := int64(b.N)
			b.ResetTimer()
			cpu0, cpuOK := benchload.SelfCPU()
			start := time.Now()
			gaps.last.Store(start.UnixNano())
			c, err := messaging.Consume(context.Background(), js, messaging.ConsumerConfig{
				Stream:  stream,
				Durable: "runtime",
				Workers: workers,
			}, func(_ context.Context, ev messaging.Event[benchThing]) error {
				if ev.Data.N != 1 {
					failed.Add(1)
				}
				gaps.tick()
				if handled.Add(1) == n {
					close(done)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.Stop(ctx)
			}()
			benchWait(b, done, failed.Load)
			settle(b, stream, "runtime")
			elapsed := time.Since(start)
			b.StopTimer()
			st := c.Stats(context.Background())
			if st.Handled != uint64(b.N) || st.Retried+st.DeadLettered > 0 {
				b.Fatalf("handled %d of %d, retried %d, dead-lettered %d", st.Handled, b.N, st.Retried, st.DeadLettered)
			}
			benchRateReport(b, b.N, elapsed, "msgs", cpu0, cpuOK)
			gaps.report(b)
			// Declared again after an interrupted iterator (a stall).
			b.ReportMetric(float64(st.Recreated), "recreated")
			if st.Recreated > 0 {
				b.Logf("consumer declared again; last error: %s", st.LastError)
			}
		})
	}
}

// benchGaps tracks the longest pause between two handled messages, which
// tells a stall from a steady slow rate.
type benchGaps struct{ last, longest atomic.Int64 }

func (g *benchGaps) tick() {
	now := time.Now().UnixNano()
	gap := now - g.last.Swap(now)
	for {
		cur := g.longest.Load()
		if gap <= cur || g.longest.CompareAndSwap(cur, gap) {
			return
		}
	}
}

func (g *benchGaps) report(b *testing.B) {
	b.ReportMetric(float64(g.longest.Load())/float64(time.Millisecond), "max-gap-ms")
}

// benchWait waits for done, failing on the first failure that failed
// counts, or after a minute.
func benchWait(b *testing.B, done <-chan struct{}, failed func() int64) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("not done within a minute")
	}
	if n := failed(); n > 0 {
		b.Fatalf("%d operations failed", n)
	}
}

// BenchmarkPublish measures publishing {"n":1} events to a file-store
// stream with a message id each: asynchronously, b.N publishes then a wait
// for every ack, with jetstream's PublishAsync ("raw-async") and with
// messaging.Publisher.PublishAsync ("typed-async"); and synchronously from
// 16 goroutines, each waiting for its ack, with jetstream's PublishMsg
// ("raw-sync/c=16") and messaging.Publisher.Publish ("typed-sync/c=16").
// Both sides allow 256 unacknowledged asynchronous publishes, the
// Publisher's default. See docs/performance.md.
func BenchmarkPublish(b *testing.B) {
	srv := startServer(b)
	nc := benchConnect(b, srv, "bench-publish", false)
	var failed atomic.Int64
	js := benchJetStream(b, nc, &failed, jetstream.WithPublishAsyncMaxPending(messaging.DefaultMaxInFlight))
	pub, err := messaging.NewPublisher(nc)
	if err != nil {
		b.Fatal(err)
	}
	event := func(subject string) messaging.OutEvent {
		return messaging.OutEvent{Subject: subject, Type: "bench.thing", Data: benchThing{N: 1}}
	}

	b.Run("raw-async", func(b *testing.B) {
		b.ReportAllocs()
		_, subject := benchStream(b, js)
		failed.Store(0)
		b.ResetTimer()
		cpu0, cpuOK := benchload.SelfCPU()
		start := time.Now()
		for range b.N {
			if _, err := js.PublishAsync(subject, benchPayload, jetstream.WithMsgID(nuid.Next())); err != nil {
				b.Fatalf("publish: %v", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes not acknowledged within a minute")
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d publishes failed", n, b.N)
		}
		benchRateReport(b, b.N, elapsed, "msgs", cpu0, cpuOK)
	})

	b.Run("typed-async", func(b *testing.B) {
		b.ReportAllocs()
		_, subject := benchStream(b, js)
		ctx := b.Context()
		futures := make([]jetstream.PubAckFuture, 0, b.N)
		b.ResetTimer()
		cpu0, cpuOK := benchload.SelfCPU()
		start := time.Now()
		for range b.N {
			f, err := pub.PublishAsync(ctx, event(subject))
			if err != nil {
				b.Fatalf("publish: %v", err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatalf("publish: %v", err)
			case <-time.After(time.Minute):
				b.Fatal("publish not acknowledged within a minute")
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		benchRateReport(b, b.N, elapsed, "msgs", cpu0, cpuOK)
	})

	const c = 16
	b.Run(fmt.Sprintf("raw-sync/c=%d", c), func(b *testing.B) {
		_, subject := benchStream(b, js)
		benchload.Run(b, c, func(ctx context.Context) error {
			_, err := js.Publish(ctx, subject, benchPayload, jetstream.WithMsgID(nuid.Next()))
			return err
		}, benchload.SelfCPU)
	})
	b.Run(fmt.Sprintf("typed-sync/c=%d", c), func(b *testing.B) {
		_, subject := benchStream(b, js)
		benchload.Run(b, c, func(ctx context.Context) error {
			_, err := pub.Publish(ctx, event(subject))
			return err
		}, benchload.SelfCPU)
	})
}
