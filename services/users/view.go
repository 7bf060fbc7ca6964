package users

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/services/users/contract"
)

// view is this replica's in-memory list of live users, in id order, kept
// current by an ordered consumer on the USERS stream that starts from the
// last event of each user. It serves users.list; users.get reads the stream
// directly.
type view struct {
	mu      sync.Mutex
	ids     []string // sorted
	users   map[string]contract.User
	applied uint64        // stream sequence of the last event applied
	changed chan struct{} // closed and replaced whenever applied grows
	cc      jetstream.ConsumeContext
	logger  *slog.Logger
}

func startView(ctx context.Context, stream jetstream.Stream, logger *slog.Logger) (*view, error) {
	v := &view{users: map[string]contract.User{}, changed: make(chan struct{}), logger: logger}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contract.EventSubjects},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("users view: %w", err)
	}
	cc, err := cons.Consume(v.apply)
	if err != nil {
		return nil, fmt.Errorf("users view: %w", err)
	}
	v.cc = cc
	return v, nil
}

func (v *view) stop() { v.cc.Stop() }

func (v *view) apply(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		v.logger.Warn("users view: message without metadata", slog.String("error", err.Error()))
		return
	}
	ev, err := decodeEvent(msg.Data())
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.logger.Warn("users view: skipping undecodable event", slog.Uint64("stream_seq", meta.Sequence.Stream), slog.String("error", err.Error()))
	} else {
		id := ev.User.ID
		i, found := slices.BinarySearch(v.ids, id)
		switch {
		case ev.Type == contract.EventDeleted && found:
			v.ids = slices.Delete(v.ids, i, i+1)
			delete(v.users, id)
		case ev.Type != contract.EventDeleted:
			if !found {
				v.ids = slices.Insert(v.ids, i, id)
			}
			v.users[id] = ev.User
		}
	}
	if meta.Sequence.Stream > v.applied {
		v.applied = meta.Sequence.Stream
		close(v.changed)
		v.changed = make(chan struct{})
	}
}

// waitFor returns once the view has applied the event at stream sequence
// seq (or a later one), or with ctx's error.
func (v *view) waitFor(ctx context.Context, seq uint64) error {
	for {
		v.mu.Lock()
		applied, changed := v.applied, v.changed
		v.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (v *view) page(after string, limit int) ([]contract.User, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := 0
	if after != "" {
		i, found := slices.BinarySearch(v.ids, after)
		if found {
			i++
		}
		start = i
	}
	end := min(start+limit, len(v.ids))
	out := make([]contract.User, 0, end-start)
	for _, id := range v.ids[start:end] {
		out = append(out, v.users[id])
	}
	next := ""
	if end < len(v.ids) {
		next = v.ids[end-1]
	}
	return out, next
}
