package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
)

// The batch mode of the consumer runtime: batches in stream order, acked
// after the handler returned, a failing message found and dead-lettered
// alone, and nothing overtaking a message that is being retried.

// batchLog records what a batch handler applied, in order.
type batchLog struct {
	mu      sync.Mutex
	applied []int
	batches []int // sizes
}

func (l *batchLog) add(batch []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = append(l.applied, batch...)
	l.batches = append(l.batches, len(batch))
}

func (l *batchLog) snapshot() ([]int, []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.applied), slices.Clone(l.batches)
}

func decodeThings(t *testing.T, ds []*messaging.Delivery) []int {
	t.Helper()
	out := make([]int, 0, len(ds))
	for _, d := range ds {
		var th thing
		if err := json.Unmarshal(d.Payload, &th); err != nil {
			t.Errorf("decode %s: %v", d.Payload, err)
		}
		out = append(out, th.N)
	}
	return out
}

func consumeBatches(t *testing.T, js jetstream.JetStream, cfg messaging.ConsumerConfig, h messaging.BatchHandler) *messaging.Consumer {
	t.Helper()
	if cfg.Stream == "" {
		cfg.Stream = "EVENTS"
	}
	if cfg.Durable == "" {
		cfg.Durable = "batcher"
	}
	c, err := messaging.ConsumeBatches(t.Context(), js, cfg, h)
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

func upTo(n int, skip ...int) []int {
	var out []int
	for i := range n {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

func waitApplied(t *testing.T, log *batchLog, c *messaging.Consumer, want []int) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, 10*time.Millisecond, func() error {
		got, _ := log.snapshot()
		st := c.Stats(t.Context())
		if len(got) < len(want) || st.AckPending != 0 || st.Pending != 0 {
			return fmt.Errorf("applied %d of %d; stats %+v", len(got), len(want), st)
		}
		return nil
	})
	got, _ := log.snapshot()
	if !slices.Equal(got, want) {
		t.Fatalf("applied %v\nwant    %v", got, want)
	}
}

func TestConsumeBatchesInStreamOrder(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 250)
	var log batchLog
	var badSeq atomic.Int64
	var last atomic.Uint64
	c := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 40}, func(ctx context.Context, ds []*messaging.Delivery) error {
		for _, d := range ds {
			if d.StreamSeq <= last.Load() || d.EventID != "thing-"+strconv.Itoa(int(d.StreamSeq)-1) {
				badSeq.Add(1)
			}
			last.Store(d.StreamSeq)
		}
		log.add(decodeThings(t, ds))
		return nil
	})
	waitApplied(t, &log, c, upTo(250))
	_, sizes := log.snapshot()
	if slices.Max(sizes) > 40 {
		t.Errorf("batch sizes %v: over BatchSize 40", sizes)
	}
	if len(sizes) >= 250 {
		t.Errorf("%d batches for 250 queued messages: not batched", len(sizes))
	}
	if badSeq.Load() != 0 {
		t.Errorf("%d deliveries out of stream order", badSeq.Load())
	}
	if st := c.Stats(t.Context()); st.Handled != 250 || st.DeadLettered != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A batch that fails permanently because of one message is split until that
// message is alone: it is dead-lettered, every other one is applied, in
// order, once.
// TestConsumeBatchesHandlerTimeout: HandlerTimeout bounds each batch
// handler call, as it bounds a delivery handler's.
func TestConsumeBatchesHandlerTimeout(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	errs := make(chan error, 10)
	var calls atomic.Int64
	c := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 10, HandlerTimeout: 100 * time.Millisecond, RetryBase: 10 * time.Millisecond},
		func(ctx context.Context, _ []*messaging.Delivery) error {
			if calls.Add(1) > 1 {
				return nil
			}
			select {
			case <-ctx.Done():
				errs <- ctx.Err()
			case <-time.After(10 * time.Second):
				errs <- errors.New("the handler's context did not end within 10s")
			}
			return ctx.Err()
		})
	publishThings(t, js, 0, 1)
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the batch handler's context ended with %v, want DeadlineExceeded", err)
	}
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if st := c.Stats(t.Context()); calls.Load() < 2 || st.Handled != 1 || st.AckPending != 0 {
			return fmt.Errorf("calls %d, stats %+v", calls.Load(), st)
		}
		return nil
	})
}

func TestConsumeBatchesDeadLettersOnlyThePoisonMessage(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 60)
	var log batchLog
	c := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 32}, func(ctx context.Context, ds []*messaging.Delivery) error {
		ns := decodeThings(t, ds)
		if slices.Contains(ns, 17) {
			return messaging.Permanent(errors.New("17 violates a constraint"))
		}
		log.add(ns)
		return nil
	})
	waitApplied(t, &log, c, upTo(60, 17))
	dl := waitDeadLetters(t, js, 1)
	if len(dl) != 1 || dl[0].Header.Get(messaging.HeaderDeadLetterSequence) != "18" ||
		dl[0].Header.Get(messaging.HeaderDeadLetterReason) != messaging.ReasonPermanent ||
		dl[0].Header.Get(messaging.HeaderDeadLetterConsumer) != "batcher" {
		t.Fatalf("dead letters %v", dl)
	}
	if st := c.Stats(t.Context()); st.Handled != 59 || st.DeadLettered != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A handler that panics on a message is a permanent failure of that message.
func TestConsumeBatchesPanicIsPermanent(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 10)
	var log batchLog
	c := consumeBatches(t, js, messaging.ConsumerConfig{}, func(ctx context.Context, ds []*messaging.Delivery) error {
		ns := decodeThings(t, ds)
		if slices.Contains(ns, 3) {
			panic("boom")
		}
		log.add(ns)
		return nil
	})
	waitApplied(t, &log, c, upTo(10, 3))
	if dl := waitDeadLetters(t, js, 1); dl[0].Header.Get(messaging.HeaderDeadLetterSequence) != "4" {
		t.Fatalf("dead letter of sequence %s, want 4", dl[0].Header.Get(messaging.HeaderDeadLetterSequence))
	}
}

// A transient failure (the handler's database is down) holds the batch and
// everything behind it; with RetryForever nothing is dead-lettered, and once
// the failure ends everything is applied in order, once.
func TestConsumeBatchesRetriesInPlaceInOrder(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 20)
	var calls atomic.Int64
	var log batchLog
	c := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 8, MaxDeliver: messaging.RetryForever, RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond},
		func(ctx context.Context, ds []*messaging.Delivery) error {
			if calls.Add(1) <= 6 {
				return errors.New("database unreachable")
			}
			log.add(decodeThings(t, ds))
			return nil
		})
	// More arrive while it is down: they queue behind.
	testkit.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if calls.Load() < 2 {
			return errors.New("not retried yet")
		}
		return nil
	})
	publishThings(t, js, 20, 30)
	waitApplied(t, &log, c, upTo(30))
	st := c.Stats(t.Context())
	if st.DeadLettered != 0 || st.Retried == 0 || st.Handled != 30 {
		t.Errorf("stats %+v", st)
	}
}

// A message that keeps failing transiently is dead-lettered after
// MaxDeliver attempts, found by splitting its batch; the rest is applied
// in order.
func TestConsumeBatchesMaxDeliverFindsTheFailingMessage(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 16)
	var log batchLog
	c := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 16, MaxDeliver: 3, RetryBase: 5 * time.Millisecond, RetryMax: 10 * time.Millisecond},
		func(ctx context.Context, ds []*messaging.Delivery) error {
			ns := decodeThings(t, ds)
			if slices.Contains(ns, 9) {
				return errors.New("timeout on 9")
			}
			log.add(ns)
			return nil
		})
	waitApplied(t, &log, c, upTo(16, 9))
	dl := waitDeadLetters(t, js, 1)
	if got := dl[0].Header.Get(messaging.HeaderDeadLetterReason); got != messaging.ReasonMaxDeliveries {
		t.Errorf("reason %q", got)
	}
	if got := dl[0].Header.Get(messaging.HeaderDeadLetterSequence); got != "10" {
		t.Errorf("dead letter of sequence %s, want 10", got)
	}
}

// A batch cut short by Stop is not acked: the next consumer gets all of it.
func TestConsumeBatchesStopHandsBackTheBatch(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 12)
	started := make(chan struct{}, 1)
	c, err := messaging.ConsumeBatches(t.Context(), js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "batcher", BatchSize: 5},
		func(ctx context.Context, ds []*messaging.Delivery) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = c.Stop(ctx)
	var log batchLog
	c2 := consumeBatches(t, js, messaging.ConsumerConfig{BatchSize: 5}, func(ctx context.Context, ds []*messaging.Delivery) error {
		log.add(decodeThings(t, ds))
		return nil
	})
	// Well inside the 30s AckWait.
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		got, _ := log.snapshot()
		slices.Sort(got)
		if !slices.Equal(got, upTo(12)) {
			return fmt.Errorf("got %v", got)
		}
		return nil
	})
	if st := c2.Stats(t.Context()); st.DeadLettered != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A consumer positioned with OptStartSeq starts there.
func TestConsumeBatchesFromStartSequence(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	publishThings(t, js, 0, 10)
	var log batchLog
	c := consumeBatches(t, js, messaging.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 7},
		func(ctx context.Context, ds []*messaging.Delivery) error {
			log.add(decodeThings(t, ds))
			return nil
		})
	waitApplied(t, &log, c, []int{6, 7, 8, 9})
}

func TestConsumeBatchesInvalidOptions(t *testing.T) {
	srv := startServer(t)
	js := eventsStream(t, connect(t, srv))
	h := func(context.Context, []*messaging.Delivery) error { return nil }
	for _, cfg := range []messaging.ConsumerConfig{
		{Stream: "EVENTS", Durable: "b", Workers: 2},
		{Stream: "EVENTS", Durable: "b", BatchSize: -1},
		{Stream: "EVENTS", Durable: "b", Middleware: []messaging.DeliveryMiddleware{func(h messaging.DeliveryHandler) messaging.DeliveryHandler { return h }}},
		{Stream: "EVENTS"},
	} {
		if _, err := messaging.ConsumeBatches(t.Context(), js, cfg, h); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("ConsumeBatches(%+v) = %v, want ErrInvalidOption", cfg, err)
		}
	}
}
