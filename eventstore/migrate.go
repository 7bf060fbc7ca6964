package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
)

// schemaVersion is the layout of the store's internal subjects. A stream
// without a schema marker was written by an earlier Switchboard, which
// kept unique values and listings elsewhere.
const schemaVersion = 2

// migrate brings a stream written by an earlier layout up to this one:
// it adds the listing index entries and unique values of the entities
// that exist, then marks the stream. It runs once per stream; replicas
// that run it at the same time write nothing twice (every write is
// conditional on its subject being empty).
func (s *Store[T]) migrate(ctx context.Context) error {
	_, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.schemaSubject())
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("eventstore %s: %w", s.cfg.Stream.Name, err)
	}
	live, err := s.liveEntities(ctx)
	if err != nil {
		return fmt.Errorf("eventstore %s: upgrade: %w", s.cfg.Stream.Name, err)
	}
	if len(live) > 0 {
		s.logger.Info("upgrading the stream to the current layout", slog.String("stream", s.cfg.Stream.Name), slog.Int("entities", len(live)))
	}
	for _, v := range live {
		id := s.cfg.Key(v)
		msgs := []*nats.Msg{messaging.Expect(&nats.Msg{Subject: s.cfg.indexSubject(s.cfg.Listing(v), id)}, messaging.ExpectLastSubjectSequence(0))}
		if s.cfg.Uniques != nil {
			for _, u := range s.cfg.Uniques(v) {
				data, _ := json.Marshal(claimRecord{Owner: id})
				msgs = append(msgs, messaging.Expect(&nats.Msg{Subject: s.cfg.uniqueSubject(u), Data: data}, messaging.ExpectLastSubjectSequence(0)))
			}
		}
		for _, m := range msgs {
			if _, err := s.pub.PublishMsgs(ctx, m); err != nil && !messaging.IsWrongLastSequence(err) {
				return fmt.Errorf("eventstore %s: upgrade %s: %w", s.cfg.Stream.Name, id, err)
			}
		}
	}
	marker := messaging.Expect(&nats.Msg{Subject: s.cfg.schemaSubject(), Data: fmt.Appendf(nil, `{"version":%d}`, schemaVersion)},
		messaging.ExpectLastSubjectSequence(0))
	if _, err := s.pub.PublishMsgs(ctx, marker); err != nil && !messaging.IsWrongLastSequence(err) {
		return fmt.Errorf("eventstore %s: mark layout: %w", s.cfg.Stream.Name, err)
	}
	return nil
}

// liveEntities reads the last event of every entity and returns those that
// exist, in id order (creation order, for time-ordered ids).
func (s *Store[T]) liveEntities(ctx context.Context) ([]T, error) {
	if _, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EventFilter); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil // a new stream
	} else if err != nil {
		return nil, err
	}
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.cfg.EventFilter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, err
	}
	type last struct {
		seq  uint64
		v    T
		live bool
	}
	byID := map[string]last{}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		var pending uint64
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			pending = meta.NumPending
			id := s.cfg.IDOf(msg.Subject())
			typ, v, err := s.cfg.Decode(msg.Data())
			if id == "" || err != nil || s.cfg.Key(v) != id {
				continue
			}
			if cur, ok := byID[id]; !ok || meta.Sequence.Stream > cur.seq {
				byID[id] = last{seq: meta.Sequence.Stream, v: v, live: !s.cfg.Ends(typ)}
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 || pending == 0 {
			break
		}
	}
	ids := make([]string, 0, len(byID))
	for id, l := range byID {
		if l.live {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		out = append(out, byID[id].v)
	}
	return out, nil
}
