package messaging_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
)

// With Prefetch left at 0, a consumer holds Workers+Workers messages
// while its handlers have not finished (slow handlers keep no more from
// other replicas than that), and more once its handlers prove fast, up to
// Workers+8×Workers; the server's count of unacknowledged messages is what
// it holds.
func TestConsumerPrefetchFollowsHandlerTimes(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	const workers, total = 2, 600
	publishThings(t, js, 0, total)

	ackPending := func(ctx context.Context) (int, error) {
		cons, err := js.Consumer(ctx, "EVENTS", "worker")
		if err != nil {
			return 0, err
		}
		return cons.CachedInfo().NumAckPending, nil
	}
	release := make(chan struct{})
	var handled, maxHeld atomic.Int64
	var c atomic.Pointer[messaging.Consumer]
	c.Store(consume(t, js, messaging.ConsumerConfig{Workers: workers}, func(ctx context.Context, ev messaging.Event[thing]) error {
		<-release
		handled.Add(1)
		held := int64(messaging.Held(c.Load()))
		for old := maxHeld.Load(); held > old && !maxHeld.CompareAndSwap(old, held); old = maxHeld.Load() {
		}
		return nil
	}))

	// Blocked handlers: it holds what its workers run and as many again.
	testkit.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n, err := ackPending(t.Context()); err != nil || n != 2*workers {
			return fmt.Errorf("holding %d (%v), want %d", n, err, 2*workers)
		}
		return nil
	})
	// And no more: every place beyond those is kept from pulls. A pull of
	// the messages waiting would come back within milliseconds.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n, err := ackPending(t.Context()); err != nil || n != 2*workers {
			t.Fatalf("holding %d (%v) while its %d handlers are blocked, want %d", n, err, workers, 2*workers)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Fast handlers: it holds more, within its bound.
	close(release)
	testkit.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		if n := handled.Load(); n < total {
			return fmt.Errorf("handled %d of %d", n, total)
		}
		return nil
	})
	if got, most := maxHeld.Load(), int64(workers+8*workers); got <= 2*workers || got > most {
		t.Fatalf("held at most %d messages with fast handlers, want more than %d and at most %d", got, 2*workers, most)
	}
}
