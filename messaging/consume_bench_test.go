package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
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

// BenchmarkConsume compares how fast stored messages are consumed and
// acknowledged: with a jetstream consumer.Consume callback that acks each
// message (the baseline, "raw"), and with messaging.Consume at its default
// worker count and a typed no-op handler ("runtime"). Each round publishes
// its messages ({"n":1}, with a Nats-Msg-Id) to a stream of its own before
// the clock starts; the clock stops when the consumer's last message is
// acknowledged on the server (ack pending and pending both 0).
// "same-json" compares the runtime with a raw callback that also decodes
// each message into the same struct, the JSON work the typed handler does
// (goal 1 of issue 12's honest baseline, for consumers). Fixed
// counts, alternating rounds (benchload.CompareBatch): go test -run '^$'
// -bench Consume -benchtime 1x ./messaging/. See docs/performance.md.
func BenchmarkConsume(b *testing.B) {
	srv := startServer(b)
	nc := benchConnect(b, srv, "bench-consume", false)
	var failed atomic.Int64
	js := benchJetStream(b, nc, &failed)

	// prepare publishes n messages to a new stream and returns its name.
	prepare := func(n int) (string, error) {
		stream, subject := benchStream(b, js)
		failed.Store(0)
		for range n {
			if _, err := js.PublishAsync(subject, benchPayload, jetstream.WithMsgID(nuid.Next())); err != nil {
				return "", fmt.Errorf("publish: %w", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return "", errors.New("pre-publish not acknowledged within a minute")
		}
		if n := failed.Load(); n > 0 {
			return "", fmt.Errorf("%d pre-published messages failed", n)
		}
		return stream, nil
	}
	// settle waits until the durable has nothing pending or unacknowledged.
	settle := func(ctx context.Context, stream, durable string) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for {
			info, err := js.Consumer(ctx, stream, durable)
			if err == nil {
				ci := info.CachedInfo()
				if ci.NumAckPending == 0 && ci.NumPending == 0 {
					return nil
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("consumer %s did not settle within a minute (last error: %v)", durable, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// drained waits for done, failing on the first failure failed counts.
	drained := func(done <-chan struct{}) error {
		select {
		case <-done:
		case <-time.After(time.Minute):
			return errors.New("not done within a minute")
		}
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%d operations failed", n)
		}
		return nil
	}

	// rawConsume returns the baseline: a jetstream Consume callback that
	// acks each message, after decoding it into a benchThing when decode is
	// set (the JSON work the runtime's typed handler does too).
	rawConsume := func(name string, decode bool) benchload.Batch {
		return benchload.Batch{Name: name, Prepare: func(_ context.Context, n int) (func(context.Context) error, error) {
			stream, err := prepare(n)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				var handled atomic.Int64
				done := make(chan struct{})
				cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
					Durable:   name,
					AckPolicy: jetstream.AckExplicitPolicy,
				})
				if err != nil {
					return err
				}
				cc, err := cons.Consume(func(msg jetstream.Msg) {
					if decode {
						var v benchThing
						if err := json.Unmarshal(msg.Data(), &v); err != nil || v.N != 1 {
							failed.Add(1)
						}
					}
					if err := msg.Ack(); err != nil {
						failed.Add(1)
					}
					if handled.Add(1) == int64(n) {
						close(done)
					}
				})
				if err != nil {
					return err
				}
				defer cc.Stop()
				if err := drained(done); err != nil {
					return err
				}
				return settle(ctx, stream, name)
			}, nil
		}}
	}
	raw, rawJSON := rawConsume("raw", false), rawConsume("rawjson", true)

	var recreated atomic.Uint64
	runtime := benchload.Batch{Name: "runtime", Prepare: func(_ context.Context, n int) (func(context.Context) error, error) {
		stream, err := prepare(n)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			var handled atomic.Int64
			done := make(chan struct{})
			c, err := messaging.Consume(ctx, js, messaging.ConsumerConfig{
				Stream:  stream,
				Durable: "runtime",
				// Workers: the default, messaging.DefaultConsumerWorkers.
			}, func(_ context.Context, ev messaging.Event[benchThing]) error {
				if ev.Data.N != 1 {
					failed.Add(1)
				}
				if handled.Add(1) == int64(n) {
					close(done)
				}
				return nil
			})
			if err != nil {
				return err
			}
			// Stopped off the clock, once the run is over.
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.Stop(ctx)
			})
			if err := drained(done); err != nil {
				return err
			}
			if err := settle(ctx, stream, "runtime"); err != nil {
				return err
			}
			st := c.Stats(ctx)
			if st.Handled != uint64(n) || st.Retried+st.DeadLettered > 0 {
				return fmt.Errorf("handled %d of %d, retried %d, dead-lettered %d", st.Handled, n, st.Retried, st.DeadLettered)
			}
			// Declared again after an interrupted iterator (a stall).
			recreated.Add(st.Recreated)
			if st.Recreated > 0 {
				b.Logf("consumer declared again; last error: %s", st.LastError)
			}
			return nil
		}, nil
	}}

	b.Run(fmt.Sprintf("workers=%d", messaging.DefaultConsumerWorkers), func(b *testing.B) {
		benchload.CompareBatch(b, 30000, raw, runtime, benchload.SelfCPU)
		b.ReportMetric(float64(recreated.Load()), "recreated")
	})
	// Against a baseline that decodes each message's JSON too, as goal 1
	// of issue 12 compares the typed endpoint with a raw handler doing the
	// same JSON work.
	b.Run(fmt.Sprintf("same-json/workers=%d", messaging.DefaultConsumerWorkers), func(b *testing.B) {
		benchload.CompareBatch(b, 30000, rawJSON, runtime, benchload.SelfCPU)
	})
}

// BenchmarkPublish compares publishing {"n":1} events with a message id
// to a file-store stream: asynchronously ("async": per round, n publishes
// then a wait for every ack), jetstream's PublishAsync with
// jetstream.WithMsgID (the baseline, "raw") against
// messaging.Publisher.PublishAsync ("typed"), both allowing 256
// unacknowledged publishes, the Publisher's default; and synchronously
// from 16 goroutines, each waiting for its ack ("sync/c=16"), jetstream's
// Publish against messaging.Publisher.Publish. Fixed counts, alternating
// rounds: go test -run '^$' -bench Publish -benchtime 1x ./messaging/. See
// docs/performance.md.
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

	// rawAsync is the async baseline: jetstream's PublishAsync with a
	// message id, of benchPayload, or of benchThing encoded per publish
	// with encoding/json when encode is set (the JSON work the Publisher
	// does too).
	rawAsync := func(b *testing.B, name string, encode bool) benchload.Batch {
		return benchload.Batch{Name: name, Prepare: func(_ context.Context, n int) (func(context.Context) error, error) {
			_, subject := benchStream(b, js)
			return func(context.Context) error {
				failed.Store(0)
				for range n {
					data := benchPayload
					if encode {
						var err error
						if data, err = json.Marshal(benchThing{N: 1}); err != nil {
							return err
						}
					}
					if _, err := js.PublishAsync(subject, data, jetstream.WithMsgID(nuid.Next())); err != nil {
						return fmt.Errorf("publish: %w", err)
					}
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					return errors.New("publishes not acknowledged within a minute")
				}
				if n := failed.Load(); n > 0 {
					return fmt.Errorf("%d publishes failed", n)
				}
				return nil
			}, nil
		}}
	}
	typedAsync := func(b *testing.B) benchload.Batch {
		return benchload.Batch{Name: "typed", Prepare: func(_ context.Context, n int) (func(context.Context) error, error) {
			_, subject := benchStream(b, js)
			futures := make([]jetstream.PubAckFuture, 0, n)
			return func(ctx context.Context) error {
				for range n {
					f, err := pub.PublishAsync(ctx, event(subject))
					if err != nil {
						return fmt.Errorf("publish: %w", err)
					}
					futures = append(futures, f)
				}
				// One deadline for the whole wait, as the raw side has: a
				// timer per future would charge the harness to the
				// Publisher.
				deadline := time.NewTimer(time.Minute)
				defer deadline.Stop()
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						return fmt.Errorf("publish: %w", err)
					case <-deadline.C:
						return errors.New("publishes not acknowledged within a minute")
					}
				}
				return nil
			}, nil
		}}
	}
	b.Run("async", func(b *testing.B) {
		benchload.CompareBatch(b, 60000, rawAsync(b, "raw", false), typedAsync(b), benchload.SelfCPU)
	})
	// Against a baseline that encodes the same struct per publish.
	b.Run("async/same-json", func(b *testing.B) {
		benchload.CompareBatch(b, 60000, rawAsync(b, "rawjson", true), typedAsync(b), benchload.SelfCPU)
	})

	const c = 16
	b.Run(fmt.Sprintf("sync/c=%d", c), func(b *testing.B) {
		_, rawSubject := benchStream(b, js)
		_, typedSubject := benchStream(b, js)
		benchload.Compare(b, c, 9000,
			benchload.Side{Name: "raw", Call: func(ctx context.Context) error {
				_, err := js.Publish(ctx, rawSubject, benchPayload, jetstream.WithMsgID(nuid.Next()))
				return err
			}},
			benchload.Side{Name: "typed", Call: func(ctx context.Context) error {
				_, err := pub.Publish(ctx, event(typedSubject))
				return err
			}},
			benchload.SelfCPU)
	})
}
