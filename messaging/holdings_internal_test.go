package messaging

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progressMsg counts the in-progress acks sent for it; the rest of
// jetstream.Msg is not called by holdings.
type progressMsg struct {
	jetstream.Msg
	progress atomic.Int64
}

func (m *progressMsg) InProgress() error {
	m.progress.Add(1)
	return nil
}

// The one ticker of a consumer keeps every held message alive, never
// leaving one silent for more than half its AckWait, and stops touching a
// message once it is released.
func TestHoldingsKeepEveryHeldMessageAliveUntilReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ackWait = 30 * time.Second
		hs := newHoldings(ackWait)
		ctx := t.Context()
		go hs.keepAlive(ctx)

		a, b := &progressMsg{}, &progressMsg{}
		ha := hs.hold(a)
		time.Sleep(ackWait / 4) // b arrives later: it is due later
		hb := hs.hold(b)

		// By ackWait/2 after its arrival, each has had its first.
		time.Sleep(ackWait / 4)
		synctest.Wait()
		if got := a.progress.Load(); got != 1 {
			t.Fatalf("a: %d in-progress acks at ackWait/2 after it arrived, want 1", got)
		}
		time.Sleep(ackWait / 4)
		synctest.Wait()
		if got := b.progress.Load(); got != 1 {
			t.Fatalf("b: %d in-progress acks at ackWait/2 after it arrived, want 1", got)
		}

		// Held for ten AckWaits: never silent for more than ackWait/2.
		ha.release()
		ha.release() // a second release does nothing
		before := a.progress.Load()
		last, start := b.progress.Load(), time.Now()
		silent := time.Duration(0)
		lastSign := start
		for time.Since(start) < 10*ackWait {
			time.Sleep(ackWait / 60)
			synctest.Wait()
			if n := b.progress.Load(); n != last {
				last, lastSign = n, time.Now()
			}
			silent = max(silent, time.Since(lastSign))
		}
		if silent > ackWait/2 {
			t.Errorf("b was silent for %s, more than half its AckWait %s", silent, ackWait)
		}
		if got := a.progress.Load(); got != before {
			t.Errorf("a got %d in-progress acks after its release", got-before)
		}
		hb.release()
	})
}

// A pull waits for half the slots while messages are still queued, and
// takes what is free at once when the queue is empty.
func TestTakeSlotsWaitsForHalfWhileWorkIsQueued(t *testing.T) {
	newC := func() *Consumer {
		return &Consumer{slots: make(chan struct{}, 8), queue: make(chan *heldMsg, 8), stopCh: make(chan struct{})}
	}
	// full returns a consumer with all 8 slots taken, the caller's among
	// them, and queued messages waiting for a worker.
	full := func(queued int) *Consumer {
		c := newC()
		for range 8 {
			c.slots <- struct{}{}
		}
		for range queued {
			c.queue <- &heldMsg{}
		}
		return c
	}
	t.Run("empty queue", func(t *testing.T) {
		c := newC()
		for range 6 { // 5 held by others, 1 by the caller
			c.slots <- struct{}{}
		}
		if n, ok := c.takeSlots(); !ok || n != 3 {
			t.Fatalf("takeSlots = %d, %t; want the 2 free and the caller's: 3, true", n, ok)
		}
	})
	t.Run("work queued", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := full(2)
			got := make(chan int, 1)
			go func() {
				n, _ := c.takeSlots()
				got <- n
			}()
			for freed := 1; freed <= 3; freed++ {
				<-c.slots // a worker finishes
				synctest.Wait()
				select {
				case n := <-got:
					if freed < 3 {
						t.Fatalf("pulled %d with %d slot(s) freed and work queued; want to wait for 4", n, freed)
					}
					if n != 4 {
						t.Fatalf("pulled %d, want 4", n)
					}
				default:
					if freed == 3 {
						t.Fatal("still waiting with half the slots free")
					}
				}
			}
		})
	})
	t.Run("queue drains", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := full(1)
			got := make(chan int, 1)
			go func() {
				n, _ := c.takeSlots()
				got <- n
			}()
			synctest.Wait()
			<-c.queue // a worker takes the last queued message...
			<-c.slots // ...and another one finishes
			synctest.Wait()
			select {
			case n := <-got:
				if n != 2 {
					t.Fatalf("pulled %d, want 2", n)
				}
			default:
				t.Fatal("waiting for the threshold with an empty queue: a worker would idle")
			}
		})
	})
	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := full(1)
			done := make(chan bool, 1)
			go func() {
				_, ok := c.takeSlots()
				done <- ok
			}()
			<-c.slots
			synctest.Wait()
			close(c.stopCh)
			if ok := <-done; ok {
				t.Fatal("takeSlots went on after Stop")
			}
			if len(c.slots) != 6 {
				t.Errorf("%d slots taken after Stop, want the 6 of others (its own 2 given back)", len(c.slots))
			}
		})
	})
}

// An adaptive Prefetch holds about prefetchHorizon of the workers' work,
// never fewer than Workers nor more than 8×Workers.
func TestPrefetchForHandlerTime(t *testing.T) {
	tests := []struct {
		workers int
		avg     time.Duration
		want    int
	}{
		{8, prefetchHorizon, 8},         // as long as the horizon: Workers (the start)
		{8, time.Second, 8},             // slow: never fewer than Workers
		{8, prefetchHorizon / 4, 32},    // 4 handlers per worker fit in the horizon
		{8, 10 * time.Microsecond, 64},  // fast: at most 8×Workers
		{8, 0, 64},                      // not measurable: fast
		{1, prefetchHorizon / 3, 3},     // one worker
		{2, prefetchHorizon * 2 / 5, 5}, // rounded down
		{1000, time.Nanosecond, 8000},   // no overflow
	}
	for _, tt := range tests {
		if got := prefetchFor(tt.workers, tt.avg); got != tt.want {
			t.Errorf("prefetchFor(%d, %s) = %d, want %d", tt.workers, tt.avg, got, tt.want)
		}
	}
}
