package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

// Record is an entity's state and the stream sequence of its last event.
type Record[T any] struct {
	State T
	Seq   uint64
}

// Store keeps the entities of one Config on its stream.
type Store[T any] struct {
	cfg    Config[T]
	js     jetstream.JetStream
	pub    *messaging.Publisher
	stream jetstream.Stream
	logger *slog.Logger

	local  *cache.Local[T]         // nil when off
	shared *cache.Aside[record[T]] // nil when none
	feed   *feed                   // keeps local current
	inval  *messaging.Consumer     // keeps shared current
	gate   *gate                   // opens shared reads once inval caught up
	stop   context.CancelFunc
	// unregister removes the caches' metrics.
	unregister func()
}

// Open declares the stream (idempotently; replicas and placement an
// operator set are kept), brings an older layout up to date, and starts
// the change feed of the caches.
func Open[T any](ctx context.Context, nc *nats.Conn, cfg Config[T]) (*Store[T], error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	pub, err := messaging.NewPublisher(nc, messaging.WithPublishTelemetry(cfg.Telemetry))
	if err != nil {
		return nil, err
	}
	stream, err := messaging.EnsureStream(ctx, js, cfg.streamConfig())
	if err != nil {
		return nil, err
	}
	s := &Store[T]{cfg: cfg, js: js, pub: pub, stream: stream, logger: cfg.Logger}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	if err := s.startCaches(ctx, bg, nc); err != nil {
		s.Close()
		return nil, err
	}
	s.unregister = cache.RegisterReport(cfg.Telemetry, strings.ToLower(cfg.Stream.Name), func() cache.Report {
		st := s.CacheStats()
		return cache.Report{Local: st.Local, Shared: st.Shared, SharedReadable: st.SharedOpen}
	})
	return s, nil
}

// Close stops the feed and the invalidator.
func (s *Store[T]) Close() {
	if s.unregister != nil {
		s.unregister()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.feed != nil {
		s.feed.close()
	}
	if s.inval != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		defer cancel()
		_ = s.inval.Stop(ctx)
	}
	if s.local != nil {
		s.local.Close()
	}
}

// Ready reports whether the stream can take writes (messaging.StreamReady).
func (s *Store[T]) Ready(ctx context.Context) error {
	if err := messaging.StreamReady(ctx, s.stream); err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Stream.Name, err)
	}
	return nil
}

// Consumers returns the store's durable consumers (the invalidator), for
// the service's health stats.
func (s *Store[T]) Consumers() []*messaging.Consumer {
	if s.inval == nil {
		return nil
	}
	return []*messaging.Consumer{s.inval}
}

// CacheStats describes the caches, for health and metrics.
type CacheStats struct {
	Local      *cache.LocalStats `json:"local,omitempty"`
	Shared     *cache.Stats      `json:"shared,omitempty"`
	SharedOpen bool              `json:"shared_readable"`
	FeedSeq    uint64            `json:"feed_seq"`
}

// CacheStats returns the caches' counters.
func (s *Store[T]) CacheStats() CacheStats {
	var st CacheStats
	if s.local != nil {
		l := s.local.Stats()
		st.Local = &l
	}
	if s.shared != nil {
		sh := s.shared.Stats()
		st.Shared = &sh
		st.SharedOpen = s.gate.open()
	}
	if s.feed != nil {
		st.FeedSeq = s.feed.watermark()
	}
	return st
}

// Get returns the current state of entity id, or ErrNotFound. It sees
// every write acknowledged before it was called by this process, and
// writes of other processes once the change feed has delivered them
// (normally within a millisecond; see docs/guarantees.md).
func (s *Store[T]) Get(ctx context.Context, id string) (Record[T], error) {
	var (
		v       T
		seq     uint64
		present bool
		err     error
	)
	switch {
	case s.behind(ctx):
		// The caller has seen writes this replica's feed has not
		// delivered yet: the caches may predate them. Ask the leader.
		v, seq, present, err = s.read(ctx, id)
		if err == nil && s.local != nil {
			s.local.Put(id, seq, v, present)
		}
	case s.local != nil:
		v, seq, present, err = s.local.Get(ctx, id, func(ctx context.Context) (T, uint64, bool, error) {
			return s.loadShared(ctx, id)
		})
	default:
		v, seq, present, err = s.loadShared(ctx, id)
	}
	if err != nil {
		return Record[T]{}, err
	}
	if !present {
		return Record[T]{Seq: seq}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return Record[T]{State: v, Seq: seq}, nil
}

// behind reports whether ctx asks for a position of the stream (see
// wire.Positions) that this replica's change feed has not reached.
func (s *Store[T]) behind(ctx context.Context) bool {
	after := wire.After(ctx, s.cfg.Stream.Name)
	return after > 0 && (s.feed == nil || s.feed.watermark() < after)
}

// loadShared reads id through the shared cache, when there is one.
func (s *Store[T]) loadShared(ctx context.Context, id string) (T, uint64, bool, error) {
	if s.shared == nil {
		return s.read(ctx, id)
	}
	var seq uint64
	r, found, err := s.shared.Get(ctx, id, func(ctx context.Context) (record[T], int64, bool, error) {
		v, sq, present, err := s.read(ctx, id)
		seq = sq
		return record[T]{State: v, Seq: sq}, int64(sq), present, err
	})
	if err != nil {
		var zero T
		return zero, 0, false, err
	}
	if r.Seq == 0 {
		r.Seq = seq // an absent entity carries no record
	}
	return r.State, r.Seq, found, nil
}

// read asks the stream leader for the last valid event of id. The
// sequence it returns is that of id's write filter (its events and its
// fence), which writes are conditional on.
func (s *Store[T]) read(ctx context.Context, id string) (T, uint64, bool, error) {
	var zero T
	last, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.WriteFilter(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return zero, 0, false, nil
	}
	if err != nil {
		return zero, 0, false, unavailable(err)
	}
	m := last
	if m.Subject == s.cfg.FenceSubject(id) {
		// Fenced after its last event: the state is that event's.
		if m, err = messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EntityFilter(id)); errors.Is(err, jetstream.ErrMsgNotFound) {
			return zero, last.Sequence, false, nil
		} else if err != nil {
			return zero, 0, false, unavailable(err)
		}
	}
	typ, v, ok := s.valid(id, m)
	if !ok {
		// Not an event of ours (forged, or corrupt): the entity is what
		// its last valid event says.
		s.logger.Warn("skipping a message that is not a valid event", slog.String("subject", m.Subject), slog.Uint64("stream_seq", m.Sequence))
		if typ, v, ok, err = s.lastValid(ctx, id); err != nil {
			return zero, 0, false, err
		}
		if !ok {
			return zero, last.Sequence, false, nil
		}
	}
	if s.cfg.Ends(typ) {
		return zero, last.Sequence, false, nil
	}
	return v, last.Sequence, true, nil
}

// valid decodes m and checks that it is an event about id: a known
// envelope whose state names id, with the type in its header too.
func (s *Store[T]) valid(id string, m *jetstream.RawStreamMsg) (string, T, bool) {
	typ, v, err := s.cfg.Decode(m.Data)
	if err != nil || typ == "" || s.cfg.Key(v) != id || m.Header.Get(wire.HeaderEventType) != typ {
		var zero T
		return "", zero, false
	}
	return typ, v, true
}

// lastValid walks the history of id for its last valid event.
func (s *Store[T]) lastValid(ctx context.Context, id string) (string, T, bool, error) {
	var (
		typ   string
		state T
		found bool
		after uint64
	)
	for {
		msgs, err := jetstreamext.GetBatch(ctx, s.js, s.cfg.Stream.Name, 500,
			jetstreamext.GetBatchSeq(after+1), jetstreamext.GetBatchSubject(s.cfg.EntityFilter(id)))
		if err != nil {
			return "", state, false, unavailable(err)
		}
		n := 0
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return "", state, false, unavailable(err)
			}
			n++
			after = m.Sequence
			if t, v, ok := s.valid(id, m); ok {
				typ, state, found = t, v, true
			}
		}
		if n < 500 {
			return typ, state, found, nil
		}
	}
}

// record is what the shared cache holds of an entity.
type record[T any] struct {
	State T      `json:"s"`
	Seq   uint64 `json:"q"`
}

// unavailable marks a failure to reach the stream as a 503: the caller
// may retry.
func unavailable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return wire.NewError(wire.CodeUnavailable, "stream unavailable; retry later").WithCause(err)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
