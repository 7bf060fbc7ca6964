package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// ViewConfig describes a View.
type ViewConfig[T any] struct {
	// Filter is the subject filter to follow, e.g. "users.events.*".
	Filter string
	// Decode turns a message into the key it is about and the key's new
	// value; keep false removes the key (a deletion).
	Decode func(msg jetstream.Msg) (key string, value T, keep bool, err error)
	// Logger; nil discards.
	Logger *slog.Logger
}

// View is this process's in-memory projection of a stream: the latest
// value of each key, in key order. An ordered consumer builds it from the
// last message of every subject and then follows the stream. It serves
// listings that a direct get cannot; reads of one key should go to the
// stream.
type View[T any] struct {
	cfg     ViewConfig[T]
	stream  jetstream.Stream
	mu      sync.Mutex
	keys    []string // sorted
	values  map[string]T
	applied uint64        // stream sequence of the last message applied
	changed chan struct{} // closed and replaced whenever applied grows
	cc      jetstream.ConsumeContext
	logger  *slog.Logger
}

// StartView starts following stream.
func StartView[T any](ctx context.Context, stream jetstream.Stream, cfg ViewConfig[T]) (*View[T], error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v := &View[T]{cfg: cfg, stream: stream, values: map[string]T{}, changed: make(chan struct{}), logger: logger}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.Filter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("view of %s: %w", cfg.Filter, err)
	}
	cc, err := cons.Consume(v.apply)
	if err != nil {
		return nil, fmt.Errorf("view of %s: %w", cfg.Filter, err)
	}
	v.cc = cc
	return v, nil
}

// Stop stops following the stream.
func (v *View[T]) Stop() { v.cc.Stop() }

func (v *View[T]) apply(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		v.logger.Warn("view: message without metadata", slog.String("error", err.Error()))
		return
	}
	key, value, keep, err := v.cfg.Decode(msg)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.logger.Warn("view: skipping a message that does not decode", slog.String("subject", msg.Subject()),
			slog.Uint64("stream_seq", meta.Sequence.Stream), slog.String("error", err.Error()))
	} else {
		i, found := slices.BinarySearch(v.keys, key)
		switch {
		case !keep && found:
			v.keys = slices.Delete(v.keys, i, i+1)
			delete(v.values, key)
		case keep:
			if !found {
				v.keys = slices.Insert(v.keys, i, key)
			}
			v.values[key] = value
		}
	}
	if meta.Sequence.Stream > v.applied {
		v.applied = meta.Sequence.Stream
		close(v.changed)
		v.changed = make(chan struct{})
	}
}

// Sync returns once the view has applied every message on its subjects
// that the stream held when Sync was called, so a caller sees its own
// writes; or with ctx's error.
func (v *View[T]) Sync(ctx context.Context) error {
	last, err := v.stream.GetLastMsgForSubject(ctx, v.cfg.Filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("view of %s: %w", v.cfg.Filter, err)
	}
	for {
		v.mu.Lock()
		applied, changed := v.applied, v.changed
		v.mu.Unlock()
		if applied >= last.Sequence {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("view of %s: waiting for sequence %d: %w", v.cfg.Filter, last.Sequence, ctx.Err())
		}
	}
}

// Page returns up to limit values with keys after the given one, in key
// order, for which match (nil: all) is true, and the cursor of the next
// page ("" when there is none).
func (v *View[T]) Page(after string, limit int, match func(T) bool) ([]T, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := 0
	if after != "" {
		i, found := slices.BinarySearch(v.keys, after)
		if found {
			i++
		}
		start = i
	}
	out := make([]T, 0, min(limit, len(v.keys)-start))
	lastKey := ""
	for _, k := range v.keys[start:] {
		val := v.values[k]
		if match != nil && !match(val) {
			continue
		}
		if len(out) == limit {
			return out, lastKey // there is at least one more
		}
		out = append(out, val)
		lastKey = k
	}
	return out, ""
}
