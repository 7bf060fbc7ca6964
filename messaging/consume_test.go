package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

type thing struct {
	N int `json:"n"`
}

// eventsStream creates stream EVENTS on events.> and returns a JetStream
// context on its own connection.
func eventsStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureStream(t.Context(), js, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

func publishThings(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		msg := &nats.Msg{Subject: "events.thing", Data: fmt.Appendf(nil, `{"n":%d}`, i), Header: nats.Header{}}
		msg.Header.Set(wire.HeaderEventID, "thing-"+strconv.Itoa(i))
		msg.Header.Set("X-Custom", "kept")
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

func consume(t *testing.T, js jetstream.JetStream, cfg messaging.ConsumerConfig, h func(context.Context, messaging.Event[thing]) error) *messaging.Consumer {
	t.Helper()
	if cfg.Stream == "" {
		cfg.Stream = "EVENTS"
	}
	if cfg.Durable == "" {
		cfg.Durable = "worker"
	}
	c, err := messaging.Consume(t.Context(), js, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

// seen is a concurrency-safe set of handled numbers.
type seen struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *seen) add(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int]int{}
	}
	s.m[n]++
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func deadLetters(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(t.Context(), messaging.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err == nil {
			out = append(out, m)
		}
	}
	return out
}

func waitDeadLetters(t *testing.T, js jetstream.JetStream, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	var dl []*jetstream.RawStreamMsg
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		dl = deadLetters(t, js)
		if len(dl) < n {
			return fmt.Errorf("%d dead letters, want %d", len(dl), n)
		}
		return nil
	})
	return dl
}

func TestConsumeAcksOnSuccess(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var got seen
	var badCtx atomic.Int64
	c := consume(t, js, messaging.ConsumerConfig{}, func(ctx context.Context, ev messaging.Event[thing]) error {
		d, ok := messaging.DeliveryFromContext(ctx)
		if !ok || d.StreamSeq != ev.StreamSeq || ev.EventID != "thing-"+strconv.Itoa(ev.Data.N) || ev.Delivered != 1 || ev.Subject != "events.thing" {
			badCtx.Add(1)
		}
		got.add(ev.Data.N)
		return nil
	})
	publishThings(t, js, 0, 50)
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		st := c.Stats(t.Context())
		if got.count() != 50 || st.Handled != 50 || st.AckPending != 0 || st.Pending != 0 {
			return fmt.Errorf("handled %d, stats %+v", got.count(), st)
		}
		return nil
	})
	if badCtx.Load() != 0 {
		t.Fatalf("%d deliveries with wrong metadata", badCtx.Load())
	}
}

// TestConsumeHandlerTimeout: HandlerTimeout bounds one handler call. A
// handler that waits on its context sees DeadlineExceeded once it
// passes, its failure is retried like any other, and a handler that
// finishes in time on the next delivery acks the message.
func TestConsumeHandlerTimeout(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	errs := make(chan error, 10)
	var calls atomic.Int64
	c := consume(t, js, messaging.ConsumerConfig{HandlerTimeout: 100 * time.Millisecond, RetryBase: 10 * time.Millisecond},
		func(ctx context.Context, _ messaging.Event[thing]) error {
			if calls.Add(1) > 1 {
				return nil
			}
			start := time.Now()
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
			if time.Since(start) >= 10*time.Second {
				errs <- errors.New("the handler's context did not end within 10s")
			} else {
				errs <- ctx.Err()
			}
			return ctx.Err()
		})
	publishThings(t, js, 0, 1)
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the handler's context ended with %v, want DeadlineExceeded", err)
	}
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		st := c.Stats(t.Context())
		if calls.Load() != 2 || st.Handled != 1 || st.Retried != 1 || st.AckPending != 0 {
			return fmt.Errorf("calls %d, stats %+v", calls.Load(), st)
		}
		return nil
	})
}

func TestConsumeRetriesTransientErrors(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var mu sync.Mutex
	var deliveries []uint64
	done := make(chan struct{})
	c := consume(t, js, messaging.ConsumerConfig{RetryBase: 20 * time.Millisecond, MaxDeliver: 5},
		func(_ context.Context, ev messaging.Event[thing]) error {
			mu.Lock()
			defer mu.Unlock()
			deliveries = append(deliveries, ev.Delivered)
			if ev.Delivered < 3 {
				return errors.New("downstream unavailable")
			}
			close(done)
			return nil
		})
	publishThings(t, js, 0, 1)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not handled after retries")
	}
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := c.Stats(t.Context()); st.Handled != 1 || st.Retried != 2 || st.DeadLettered != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(deliveries) != "[1 2 3]" {
		t.Fatalf("deliveries = %v, want [1 2 3]", deliveries)
	}
}

func TestConsumePermanentIsDeadLetteredAtOnce(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var calls atomic.Int64
	c := consume(t, js, messaging.ConsumerConfig{}, func(context.Context, messaging.Event[thing]) error {
		calls.Add(1)
		return messaging.Permanent(errors.New("card declined"))
	})
	publishThings(t, js, 0, 1)
	dl := waitDeadLetters(t, js, 1)
	h := dl[0].Header
	if h.Get(messaging.HeaderDeadLetterReason) != messaging.ReasonPermanent || h.Get(messaging.HeaderDeadLetterError) != "card declined" ||
		h.Get(messaging.HeaderDeadLetterDeliveries) != "1" {
		t.Fatalf("dead letter headers = %v", h)
	}
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := c.Stats(t.Context()); st.AckPending != 0 || st.Pending != 0 || st.DeadLettered != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1: a permanent failure is not retried", calls.Load())
	}
}

func TestConsumeDeadLettersAfterMaxDeliveries(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var calls atomic.Int64
	consume(t, js, messaging.ConsumerConfig{MaxDeliver: 3, RetryBase: 10 * time.Millisecond},
		func(context.Context, messaging.Event[thing]) error {
			calls.Add(1)
			return errors.New("still broken")
		})
	publishThings(t, js, 7, 8)
	dl := waitDeadLetters(t, js, 1)[0]
	want := map[string]string{
		messaging.HeaderDeadLetterSubject:    "events.thing",
		messaging.HeaderDeadLetterStream:     "EVENTS",
		messaging.HeaderDeadLetterConsumer:   "worker",
		messaging.HeaderDeadLetterSequence:   "1",
		messaging.HeaderDeadLetterDeliveries: "3",
		messaging.HeaderDeadLetterReason:     messaging.ReasonMaxDeliveries,
		messaging.HeaderDeadLetterError:      "still broken",
		wire.HeaderEventID:                   "thing-7",
		"X-Custom":                           "kept",
	}
	for k, v := range want {
		if got := dl.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if dl.Subject != "deadletter.EVENTS.worker" || string(dl.Data) != `{"n":7}` {
		t.Errorf("dead letter %s %s", dl.Subject, dl.Data)
	}
	if calls.Load() != 3 {
		t.Errorf("handler called %d times, want 3", calls.Load())
	}
}

func TestConsumePoisonDoesNotBlockOthers(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var got seen
	c := consume(t, js, messaging.ConsumerConfig{Workers: 16}, func(_ context.Context, ev messaging.Event[thing]) error {
		got.add(ev.Data.N)
		return nil
	})
	publishThings(t, js, 0, 500)
	if _, err := js.Publish(t.Context(), "events.thing", []byte("this is not JSON")); err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 500, 999)
	testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if st := c.Stats(t.Context()); got.count() != 999 || st.DeadLettered != 1 {
			return fmt.Errorf("handled %d, stats %+v", got.count(), st)
		}
		return nil
	})
	dl := deadLetters(t, js)
	if len(dl) != 1 || dl[0].Header.Get(messaging.HeaderDeadLetterReason) != messaging.ReasonUndecodable {
		t.Fatalf("dead letters = %v", dl)
	}
}

func TestConsumeConcurrencyBound(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var running, peak atomic.Int64
	var got seen
	consume(t, js, messaging.ConsumerConfig{Workers: 4}, func(_ context.Context, ev messaging.Event[thing]) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond) // work, not synchronisation
		got.add(ev.Data.N)
		return nil
	})
	publishThings(t, js, 0, 60)
	testkit.Eventually(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got.count() != 60 {
			return fmt.Errorf("handled %d", got.count())
		}
		return nil
	})
	if p := peak.Load(); p > 4 || p < 2 {
		t.Fatalf("peak concurrency = %d, want 2..4 with 4 workers", p)
	}
}

// A consumer whose process dies mid-batch (its connection closes without
// acks) loses nothing: a new one on the same durable handles the rest.
func TestConsumeSurvivesACrash(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 100)

	var got seen
	crashNC := connect(t, srv)
	crashJS, _ := jetstream.New(crashNC)
	var handledBeforeCrash atomic.Int64
	crashed := make(chan struct{})
	var once sync.Once
	consume(t, crashJS, messaging.ConsumerConfig{AckWait: 500 * time.Millisecond, Workers: 4, MaxDeliver: 100},
		func(ctx context.Context, ev messaging.Event[thing]) error {
			if handledBeforeCrash.Add(1) > 30 {
				once.Do(func() { close(crashed) })
				<-ctx.Done() // the process is dying: never finishes
				return ctx.Err()
			}
			got.add(ev.Data.N)
			return nil
		})
	<-crashed
	crashNC.Close() // the process dies: no acks, no naks

	consume(t, js, messaging.ConsumerConfig{AckWait: 500 * time.Millisecond, Workers: 4, MaxDeliver: 100},
		func(_ context.Context, ev messaging.Event[thing]) error {
			got.add(ev.Data.N)
			return nil
		})
	testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := got.count(); n != 100 {
			return fmt.Errorf("%d of 100 handled", n)
		}
		return nil
	})
}

func TestConsumeStopFinishesInFlight(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var before seen
	cfg := messaging.ConsumerConfig{Stream: "EVENTS", Durable: "worker", Workers: 3, AckWait: time.Second}
	c, err := messaging.Consume(t.Context(), js, cfg, func(_ context.Context, ev messaging.Event[thing]) error {
		started <- struct{}{}
		<-release
		before.add(ev.Data.N)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 0, 10)
	for range 3 {
		<-started
	}
	stopErr := make(chan error, 1)
	go func() { stopErr <- c.Stop(context.Background()) }()
	close(release)
	if err := <-stopErr; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if before.count() < 3 {
		t.Fatalf("%d handlers finished, want the 3 in flight", before.count())
	}
	// What finished was acked: the next consumer on the durable gets
	// exactly the rest, and none of those again.
	var after seen
	consume(t, js, cfg, func(_ context.Context, ev messaging.Event[thing]) error {
		after.add(ev.Data.N)
		return nil
	})
	testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		if n := before.count() + after.count(); n != 10 {
			return fmt.Errorf("%d + %d of 10 handled", before.count(), after.count())
		}
		return nil
	})
	before.mu.Lock()
	defer before.mu.Unlock()
	after.mu.Lock()
	defer after.mu.Unlock()
	for n := range before.m {
		if _, again := after.m[n]; again {
			t.Errorf("message %d was acked before Stop returned, yet delivered again", n)
		}
	}
}

func TestConsumeStopTimeoutLeavesWorkForRedelivery(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	started := make(chan struct{}, 10)
	c, err := messaging.Consume(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "worker", Workers: 2},
		func(ctx context.Context, _ messaging.Event[thing]) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 0, 2)
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop = %v, want DeadlineExceeded", err)
	}
	// The cancelled handlers' messages come back at once to the next
	// consumer, not after AckWait.
	var got seen
	consume(t, js, messaging.ConsumerConfig{}, func(_ context.Context, ev messaging.Event[thing]) error {
		got.add(ev.Data.N)
		return nil
	})
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got.count() != 2 {
			return fmt.Errorf("%d of 2 redelivered", got.count())
		}
		return nil
	})
}

func TestConsumeRecreatesADeletedConsumer(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var got seen
	c := consume(t, js, messaging.ConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}, func(_ context.Context, ev messaging.Event[thing]) error {
		got.add(ev.Data.N)
		return nil
	})
	publishThings(t, js, 0, 5)
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got.count() != 5 {
			return fmt.Errorf("%d of 5", got.count())
		}
		return nil
	})
	if err := js.DeleteConsumer(t.Context(), "EVENTS", "worker"); err != nil {
		t.Fatal(err)
	}
	// Once declared again it takes new messages (DeliverNew: the ones
	// published meanwhile may be missed, which is what an operator who
	// deletes a consumer asks for); poll by publishing until one arrives.
	next := 5
	testkit.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		publishThings(t, js, next, next+1)
		next++
		if got.count() <= 5 {
			return errors.New("nothing handled since the delete")
		}
		return nil
	})
	if c.Stats(t.Context()).Recreated == 0 {
		t.Fatal("stats do not count the recreation")
	}
}

func TestConsumeHandlerPanicIsDeadLettered(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var got seen
	consume(t, js, messaging.ConsumerConfig{}, func(_ context.Context, ev messaging.Event[thing]) error {
		if ev.Data.N == 1 {
			panic("boom")
		}
		got.add(ev.Data.N)
		return nil
	})
	publishThings(t, js, 0, 3)
	dl := waitDeadLetters(t, js, 1)
	if dl[0].Header.Get(messaging.HeaderDeadLetterReason) != messaging.ReasonPermanent {
		t.Fatalf("reason = %q", dl[0].Header.Get(messaging.HeaderDeadLetterReason))
	}
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got.count() != 2 {
			return fmt.Errorf("%d of 2", got.count())
		}
		return nil
	})
}

func TestConsumeInvalidConfig(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	_, err := messaging.Consume(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS"}, func(context.Context, messaging.Event[thing]) error { return nil })
	if !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("err = %v", err)
	}
}

// A consumer of another service's stream may start before that stream
// exists; it starts consuming once it does.
func TestConsumeWaitsForItsStream(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var got seen
	c := consume(t, js, messaging.ConsumerConfig{}, func(_ context.Context, ev messaging.Event[thing]) error {
		got.add(ev.Data.N)
		return nil
	})
	if !c.Stats(t.Context()).InfoUnavailable {
		t.Fatal("stats claim a consumer that cannot exist yet")
	}
	eventsStream(t, nc)
	publishThings(t, js, 0, 3)
	testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		if got.count() != 3 {
			return fmt.Errorf("%d of 3 handled", got.count())
		}
		return nil
	})
}

func TestConsumeHonoursRetryAfter(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var mu sync.Mutex
	var times []time.Time
	done := make(chan struct{})
	consume(t, js, messaging.ConsumerConfig{RetryBase: time.Millisecond, RetryMax: 10 * time.Second},
		func(context.Context, messaging.Event[thing]) error {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if len(times) == 1 {
				return messaging.RetryAfter(errors.New("429"), 300*time.Millisecond)
			}
			close(done)
			return nil
		})
	publishThings(t, js, 0, 1)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not redelivered")
	}
	mu.Lock()
	defer mu.Unlock()
	// The redelivery came no sooner than asked: a lower bound the server
	// guarantees, not a timing threshold on our speed.
	if gap := times[1].Sub(times[0]); gap < 300*time.Millisecond {
		t.Fatalf("redelivered after %s, want at least the 300ms asked for", gap)
	}
}
