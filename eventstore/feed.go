package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/messaging"
)

// Timings of the caches' upkeep.
const (
	// feedHeartbeat is the change feed's idle heartbeat: a feed that
	// stalls is noticed within two of them, and the local cache is
	// bypassed from then on.
	feedHeartbeat = time.Second
	// feedSettle is how long the feed must run without an error before
	// the local cache is used again.
	feedSettle = 2 * feedHeartbeat
	// gateCheck is how often a closed gate asks whether the shared
	// cache's invalidations caught up.
	gateCheck = 100 * time.Millisecond
)

// startCaches sets up the in-process cache and its change feed, and the
// shared cache with its invalidator and gate.
func (s *Store[T]) startCaches(ctx, bg context.Context, nc *nats.Conn) error {
	cc := s.cfg.Cache
	if cc.LocalEntries >= 0 {
		local, err := cache.NewLocal[T](cc.LocalEntries)
		if err != nil {
			return err
		}
		s.local = local
	}
	if s.local != nil || cc.Backend != nil {
		f, err := startFeed(ctx, bg, nc, s.stream, []string{s.cfg.EventFilter, s.cfg.FenceSubjects}, s.logger, func(subject string, seq uint64) {
			if s.local != nil {
				if id := s.cfg.IDOf(subject); id != "" {
					s.local.Invalidate(id, seq)
				}
			}
		}, func(healthy bool) {
			if s.local == nil {
				return
			}
			if healthy {
				s.local.Enable()
			} else {
				s.local.Disable()
			}
		})
		if err != nil {
			return err
		}
		s.feed = f
	}
	if cc.Backend == nil {
		return nil
	}
	s.gate = &gate{}
	shared, err := cache.NewAside[record[T]](cc.Backend, cache.Options{
		Namespace: strings.ToLower(s.cfg.Stream.Name), TTL: cc.TTL, Budget: cc.Budget, Logger: s.logger, Gate: s.gate.open,
	})
	if err != nil {
		return err
	}
	s.shared = shared
	inval, err := messaging.ConsumeDeliveries(ctx, s.js, messaging.ConsumerConfig{
		Stream:         s.cfg.Stream.Name,
		Durable:        s.cfg.invalidator(),
		Description:    "Invalidates the shared cache of " + s.cfg.Stream.Name + " after every event, retrying until it succeeds.",
		FilterSubjects: []string{s.cfg.EventFilter, s.cfg.FenceSubjects},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		HeadersOnly:    true,
		MaxDeliver:     messaging.RetryForever,
		RetryBase:      50 * time.Millisecond,
		RetryMax:       time.Second,
		Logger:         s.logger,
		Telemetry:      s.cfg.Telemetry,
		Replication:    s.cfg.Replication,
	}, func(ctx context.Context, d *messaging.Delivery) error {
		id := s.cfg.IDOf(d.Subject)
		if id == "" {
			return nil
		}
		return shared.Invalidate(ctx, id, int64(d.StreamSeq))
	})
	if err != nil {
		return err
	}
	s.inval = inval
	go s.gate.run(bg, s.shared, inval, func(ctx context.Context) (uint64, error) {
		m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EventFilter)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return m.Sequence, nil
	})
	return nil
}

// feed follows the stream's events with an ordered consumer (headers
// only) and tells the store which entity each one changed. It reports
// itself unhealthy on any error or a lost connection, and healthy again
// once it ran feedSettle without one.
type feed struct {
	cc      jetstream.ConsumeContext
	nc      *nats.Conn
	status  chan nats.Status
	seq     atomic.Uint64
	mu      sync.Mutex
	lastErr time.Time
	healthy bool
	report  func(bool)
	done    chan struct{}
}

func startFeed(ctx, bg context.Context, nc *nats.Conn, stream jetstream.Stream, filters []string, logger *slog.Logger,
	apply func(subject string, seq uint64), report func(healthy bool)) (*feed, error) {
	f := &feed{nc: nc, healthy: true, report: report, done: make(chan struct{})}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("change feed of %s: %w", filters[0], err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		apply(msg.Subject(), meta.Sequence.Stream)
		f.seq.Store(meta.Sequence.Stream)
	}, jetstream.PullHeartbeat(feedHeartbeat), jetstream.PullExpiry(5*feedHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			logger.Warn("change feed interrupted; the in-process cache is bypassed until it runs again", slog.String("error", err.Error()))
			f.fail()
		}))
	if err != nil {
		return nil, fmt.Errorf("change feed of %s: %w", filters[0], err)
	}
	f.cc = cc
	f.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	go f.watch(bg)
	return f, nil
}

// fail marks the feed unhealthy.
func (f *feed) fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = time.Now()
	if f.healthy {
		f.healthy = false
		f.report(false)
	}
}

// watch reacts to connection losses and restores health once the feed
// has run feedSettle without an error.
func (f *feed) watch(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(feedSettle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-f.status:
			if !ok {
				return
			}
			f.fail()
		case <-tick.C:
			f.mu.Lock()
			if !f.healthy && f.nc.IsConnected() && time.Since(f.lastErr) >= feedSettle {
				f.healthy = true
				f.report(true)
			}
			f.mu.Unlock()
		}
	}
}

// watermark is the stream sequence of the last event the feed delivered.
func (f *feed) watermark() uint64 { return f.seq.Load() }

func (f *feed) close() {
	f.cc.Stop()
	f.nc.RemoveStatusListener(f.status)
}

// gate keeps the shared cache from being read while it may hold entries
// whose invalidation is not applied yet: from the start (the invalidator
// may have events to catch up on) and after any failure of the backend
// (a write or an invalidation that did not reach it), until the
// invalidator has acknowledged every event the stream held when the gate
// last checked.
type gate struct {
	readable atomic.Bool
}

func (g *gate) open() bool { return g.readable.Load() }

func (g *gate) run(ctx context.Context, shared interface{ Stats() cache.Stats }, inval *messaging.Consumer, lastEvent func(context.Context) (uint64, error)) {
	tick := time.NewTicker(gateCheck)
	defer tick.Stop()
	errs := shared.Stats().Errors
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := shared.Stats().Errors
		if now != errs {
			errs = now
			g.readable.Store(false)
			continue
		}
		if g.readable.Load() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, gateCheck)
		target, err := lastEvent(cctx)
		var floor uint64
		if err == nil {
			floor, err = inval.AckFloor(cctx)
		}
		cancel()
		if err == nil && floor >= target && shared.Stats().Errors == errs {
			g.readable.Store(true)
		}
	}
}
