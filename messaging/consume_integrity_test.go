package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
)

// The regression tests of the consumer runtime's delivery guarantees
// (docs/guarantees.md): nothing handed to a consumer is lost, a message is
// not handled twice while it waits for a worker, and dead letters are
// never written over or chased.

// A failing message whose dead letter cannot be stored on its last
// delivery is delivered again (the server does not give up on it) and is
// dead-lettered once the dead-letter stream takes it.
func TestConsumeLastDeliveryIsNotLostWhenDeadLetteringFails(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var calls atomic.Int64
	consume(t, js, messaging.ConsumerConfig{MaxDeliver: 2, RetryBase: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		func(context.Context, messaging.Event[thing]) error {
			calls.Add(1)
			return errors.New("broken")
		})
	// The dead-letter stream goes away after the consumer declared it.
	if err := js.DeleteStream(t.Context(), messaging.DefaultDeadLetterStream); err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 0, 1)
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := calls.Load(); n < 4 {
			return fmt.Errorf("handled %d times; a message past MaxDeliver whose dead letter failed must come back", n)
		}
		return nil
	})
	if _, err := js.CreateStream(t.Context(), messaging.DeadLetterStreamConfig(messaging.DefaultDeadLetterStream)); err != nil {
		t.Fatal(err)
	}
	dl := waitDeadLetters(t, js, 1)
	if got := dl[0].Header.Get(messaging.HeaderDeadLetterReason); got != messaging.ReasonMaxDeliveries {
		t.Errorf("reason %q", got)
	}
}

// A dead letter drops the original's Nats-* headers, which would make the
// dead-letter stream refuse it (a TTL on a stream without TTLs) or treat
// it as something else.
func TestConsumeDeadLetterDropsServerHeaders(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	consume(t, js, messaging.ConsumerConfig{}, func(context.Context, messaging.Event[thing]) error {
		return messaging.Permanent(errors.New("no"))
	})
	msg := &nats.Msg{Subject: "events.thing", Data: []byte(`{"n":1}`), Header: nats.Header{}}
	msg.Header.Set("Nats-Rollup", "sub") // refused by a stream that does not allow rollups
	msg.Header.Set("X-Custom", "kept")
	if _, err := js.UpdateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, AllowRollup: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	dl := waitDeadLetters(t, js, 1)[0]
	if dl.Header.Get("Nats-Rollup") != "" || dl.Header.Get("X-Custom") != "kept" {
		t.Fatalf("dead letter headers %v", dl.Header)
	}
}

// A handler cancelled by a shutdown on the message's last delivery leaves
// the message for the next consumer, which gets it at once.
func TestConsumeShutdownOnLastDeliveryRedelivers(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	started := make(chan struct{}, 1)
	c, err := messaging.Consume(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "worker", MaxDeliver: 1},
		func(ctx context.Context, _ messaging.Event[thing]) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 0, 1)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = c.Stop(ctx)

	handled := make(chan uint64, 1)
	consume(t, js, messaging.ConsumerConfig{MaxDeliver: 1}, func(_ context.Context, ev messaging.Event[thing]) error {
		handled <- ev.Delivered
		return nil
	})
	select {
	case n := <-handled:
		if n != 2 {
			t.Errorf("delivered %d times, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message cancelled on its last delivery never came back")
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Errorf("%d dead letters for a message that was only interrupted", len(dl))
	}
}

// Messages waiting for a busy worker do not outlive their AckWait: each is
// handled exactly once, never two copies at a time, although handling one
// takes longer than the AckWait.
func TestConsumeQueuedMessagesAreNotRedelivered(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var mu sync.Mutex
	calls := map[int]int{}
	running := map[int]bool{}
	overlap := 0
	consume(t, js, messaging.ConsumerConfig{Workers: 2, AckWait: 300 * time.Millisecond},
		func(_ context.Context, ev messaging.Event[thing]) error {
			mu.Lock()
			calls[ev.Data.N]++
			if running[ev.Data.N] {
				overlap++
			}
			running[ev.Data.N] = true
			mu.Unlock()
			time.Sleep(450 * time.Millisecond) // the work itself, longer than AckWait
			mu.Lock()
			running[ev.Data.N] = false
			mu.Unlock()
			return nil
		})
	publishThings(t, js, 0, 6)
	testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 6 {
			return fmt.Errorf("%d of 6 handled", len(calls))
		}
		return nil
	})
	// Give a stray redelivery the time it would need to show up.
	time.Sleep(700 * time.Millisecond) // observing absence, not synchronising
	mu.Lock()
	defer mu.Unlock()
	for n, k := range calls {
		if k != 1 {
			t.Errorf("message %d handled %d times", n, k)
		}
	}
	if overlap != 0 {
		t.Errorf("%d handlers ran on a message already being handled", overlap)
	}
}

// Messages held for a worker when the consumer stops go back to the server
// at once: the next consumer gets them well before their AckWait.
func TestConsumeStopHandsBackQueuedMessages(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	started := make(chan struct{}, 10)
	c, err := messaging.Consume(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "worker", Workers: 1, Prefetch: 4},
		func(ctx context.Context, _ messaging.Event[thing]) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	publishThings(t, js, 0, 5)
	<-started
	// The other four are held for the one busy worker. Stop, cutting the
	// running handler short too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = c.Stop(ctx)
	var got seen
	consume(t, js, messaging.ConsumerConfig{}, func(_ context.Context, ev messaging.Event[thing]) error {
		got.add(ev.Data.N)
		return nil
	})
	// Well inside the 30s AckWait.
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got.count() != 5 {
			return fmt.Errorf("%d of the 5 held messages came back", got.count())
		}
		return nil
	})
}

// The dead-letter stream is created once; limits an operator set on it
// survive a consumer start.
func TestConsumeKeepsDeadLetterStreamSettings(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	consume(t, js, messaging.ConsumerConfig{Durable: "first"}, func(context.Context, messaging.Event[thing]) error { return nil })
	cfg := messaging.DeadLetterStreamConfig(messaging.DefaultDeadLetterStream)
	cfg.MaxAge = 72 * time.Hour
	cfg.MaxMsgs = 1000
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	consume(t, js, messaging.ConsumerConfig{Durable: "second"}, func(context.Context, messaging.Event[thing]) error { return nil })
	s, err := js.Stream(t.Context(), messaging.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != 72*time.Hour || got.MaxMsgs != 1000 {
		t.Fatalf("dead-letter stream reset to max age %s, max msgs %d", got.MaxAge, got.MaxMsgs)
	}
}

// Replaying all dead letters replays those that exist when it starts, not
// the ones its own replays cause.
func TestReplayAllDoesNotChaseItsOwnDeadLetters(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	var calls atomic.Int64
	c := consume(t, js, messaging.ConsumerConfig{Workers: 4}, func(context.Context, messaging.Event[thing]) error {
		calls.Add(1)
		return messaging.Permanent(errors.New("always"))
	})
	publishThings(t, js, 0, 40)
	waitDeadLetters(t, js, 40)
	dls := messaging.NewDeadLetters(js, "")
	var resubmitted atomic.Int64
	n, err := dls.ReplayAll(t.Context(), c.DeadLetterQuery(), func(ctx context.Context, dl messaging.DeadLetter) error {
		resubmitted.Add(1)
		before := calls.Load()
		_, err := js.Publish(ctx, dl.Subject, dl.Data)
		if err == nil {
			// Let the replay fail and be dead-lettered again before the
			// walk goes on, as a fast handler would.
			err = testkit.Poll(5*time.Second, time.Millisecond, func() error {
				if calls.Load() == before {
					return errors.New("not handled yet")
				}
				return nil
			})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 40 || resubmitted.Load() != 40 {
		t.Fatalf("replayed %d, resubmitted %d; want 40 each", n, resubmitted.Load())
	}
	// The 40 replays failed again: 40 new dead letters, the old ones gone.
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		page, _, err := dls.List(t.Context(), c.DeadLetterQuery(), 0, 100)
		if err != nil || len(page) != 40 {
			return fmt.Errorf("%d dead letters (%v)", len(page), err)
		}
		return nil
	})
}
