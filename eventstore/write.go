package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/messaging"
)

// Unique is a value that at most one entity may hold at a time, such as
// an email address, under a name that says what it is ("email").
type Unique struct {
	Name  string
	Value string
}

// Change is one event: its type and the entity's state after it. The
// unique values the state holds (Config.Uniques) are reserved and released
// by comparing it with the state before, atomically with the event.
type Change[T any] struct {
	Type  string
	State T
}

// Idempotency makes a create safe to retry: the first create with Key
// records which entity it made; a later one with the same Key and
// Fingerprint (a digest of who asked what) gets that entity, one with
// another Fingerprint ErrKeyReused.
type Idempotency struct {
	Key         string
	Fingerprint string
}

// idemRecord is what the idempotency record holds.
type idemRecord struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fp"`
}

// uniqueRecord is what a unique value's subject holds: its holder, or ""
// once released.
type uniqueRecord struct {
	Owner string `json:"owner"`
}

// attempts bounds the retries of a write that met a concurrent one on a
// subject it only reads (a unique value being released, say).
const attempts = 5

// Create stores a new entity id with its first event. With an idempotency
// key, a retry returns the first attempt's entity. Errors: *TakenError
// (ErrTaken) for a unique value held by another entity, ErrKeyReused,
// ErrKeyInFlight, and ErrStale when id exists already.
func (s *Store[T]) Create(ctx context.Context, id string, ch Change[T], idem *Idempotency) (Record[T], error) {
	for attempt := range attempts {
		rec, retry, err := s.create(ctx, id, ch, idem, attempt == 0)
		if !retry {
			return rec, err
		}
	}
	if idem != nil {
		// The subjects stayed busy: another request with this key is
		// being written.
		return Record[T]{}, ErrKeyInFlight
	}
	return Record[T]{}, fmt.Errorf("create %s: %w", id, ErrStale)
}

// create makes one attempt; retry says whether another may succeed. The
// first attempt assumes unique values were never used (one round trip).
func (s *Store[T]) create(ctx context.Context, id string, ch Change[T], idem *Idempotency, optimistic bool) (Record[T], bool, error) {
	var msgs []*nats.Msg
	if idem != nil {
		data, _ := json.Marshal(idemRecord{ID: id, Fingerprint: idem.Fingerprint})
		msgs = append(msgs, messaging.Expect(&nats.Msg{Subject: s.cfg.idempotencySubject(idem.Key), Data: data},
			messaging.ExpectLastSubjectSequence(0), messaging.WithMsgTTL(s.cfg.IdempotencyTTL)))
	}
	uniques, err := s.uniqueMsgs(ctx, id, nil, ch, optimistic)
	if err != nil {
		return Record[T]{}, false, err
	}
	msgs = append(msgs, uniques...)
	msgs = append(msgs, messaging.Expect(&nats.Msg{Subject: s.cfg.indexSubject(s.cfg.Listing(ch.State), id)},
		messaging.ExpectLastSubjectSequence(0)))
	ev, err := s.eventMsg(ctx, id, ch, 0)
	if err != nil {
		return Record[T]{}, false, err
	}
	ack, err := s.pub.PublishMsgs(ctx, append(msgs, ev)...)
	if err == nil {
		return s.written(ctx, id, ch, ack.Sequence), false, nil
	}
	if !messaging.IsWrongLastSequence(err) {
		return Record[T]{}, false, unavailable(err)
	}
	// Which expectation failed? The idempotency record first: a retry of
	// a create that was stored is not a conflict.
	if idem != nil {
		rec, found, err := s.idempotent(ctx, idem)
		if found || err != nil {
			return rec, false, err
		}
	}
	if err := s.takenBy(ctx, id, s.uniques(ch)); err != nil {
		return Record[T]{}, false, err
	}
	if _, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EntityFilter(id)); err == nil {
		return Record[T]{}, false, fmt.Errorf("%s exists: %w", id, ErrStale)
	}
	// A unique value we read free was written meanwhile: look again.
	return Record[T]{}, true, nil
}

// idempotent returns the entity that the first create with key made.
func (s *Store[T]) idempotent(ctx context.Context, idem *Idempotency) (Record[T], bool, error) {
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.idempotencySubject(idem.Key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Another request with this key is being written right now (its
		// batch holds the subject) or failed: either way, not ours.
		return Record[T]{}, false, nil
	}
	if err != nil {
		return Record[T]{}, false, unavailable(err)
	}
	var r idemRecord
	if err := json.Unmarshal(m.Data, &r); err != nil || r.ID == "" {
		return Record[T]{}, false, nil
	}
	if r.Fingerprint != idem.Fingerprint {
		return Record[T]{}, true, ErrKeyReused
	}
	rec, err := s.Get(ctx, r.ID)
	return rec, true, err
}

// Append stores the next event of the entity that prev (as Get returned
// it) is, conditional on the entity being unchanged since: ErrStale when
// it changed; *TakenError for a unique value held by another entity.
func (s *Store[T]) Append(ctx context.Context, prev Record[T], ch Change[T]) (Record[T], error) {
	for range attempts {
		rec, retry, err := s.append(ctx, prev, ch)
		if !retry {
			return rec, err
		}
	}
	return Record[T]{}, fmt.Errorf("%s: %w", s.cfg.Key(prev.State), ErrStale)
}

func (s *Store[T]) append(ctx context.Context, prev Record[T], ch Change[T]) (Record[T], bool, error) {
	id, expect := s.cfg.Key(prev.State), prev.Seq
	msgs, err := s.uniqueMsgs(ctx, id, &prev.State, ch, false)
	if err != nil {
		return Record[T]{}, false, err
	}
	ev, err := s.eventMsg(ctx, id, ch, expect)
	if err != nil {
		return Record[T]{}, false, err
	}
	ack, err := s.pub.PublishMsgs(ctx, append(msgs, ev)...)
	if err == nil {
		return s.written(ctx, id, ch, ack.Sequence), false, nil
	}
	if !messaging.IsWrongLastSequence(err) {
		return Record[T]{}, false, unavailable(err)
	}
	m, lerr := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EntityFilter(id))
	if lerr == nil && m.Sequence != expect || errors.Is(lerr, jetstream.ErrMsgNotFound) {
		return Record[T]{}, false, fmt.Errorf("%s: %w", id, ErrStale)
	}
	if err := s.takenBy(ctx, id, s.uniques(ch)); err != nil {
		return Record[T]{}, false, err
	}
	return Record[T]{}, true, nil
}

// uniques are the unique values the state after ch holds.
func (s *Store[T]) uniques(ch Change[T]) []Unique {
	if s.cfg.Uniques == nil || s.cfg.Ends(ch.Type) {
		return nil
	}
	return s.cfg.Uniques(ch.State)
}

// eventMsg is the event of ch, conditional on the entity's last sequence.
func (s *Store[T]) eventMsg(ctx context.Context, id string, ch Change[T], expect uint64) (*nats.Msg, error) {
	eventID := ulid.Make().String()
	at := s.cfg.Now().UTC()
	msg, err := s.pub.Msg(ctx, messaging.OutEvent{
		Subject: s.cfg.EventSubject(id, ch.Type),
		Type:    ch.Type,
		ID:      eventID,
		Version: s.cfg.Version(ch.State),
		Data:    s.cfg.Encode(ch.Type, eventID, at, ch.State),
	})
	if err != nil {
		return nil, err
	}
	return messaging.Expect(msg, messaging.ExpectLastSequenceFor(s.cfg.EntityFilter(id), expect)), nil
}

// uniqueMsgs are the messages that reserve the unique values the state
// after ch holds and prev did not, and release those prev held and it
// does not, each conditional on what the value's subject holds now. A
// value held by another entity is a *TakenError before anything is
// written. For a new entity, values are assumed never used (one round trip
// less); if one was, the write fails and is tried again with what it holds.
func (s *Store[T]) uniqueMsgs(ctx context.Context, id string, prev *T, ch Change[T], optimistic bool) ([]*nats.Msg, error) {
	next := s.uniques(ch)
	var before []Unique
	if prev != nil && s.cfg.Uniques != nil {
		before = s.cfg.Uniques(*prev)
	}
	reserve, release := diff(next, before), diff(before, next)
	var msgs []*nats.Msg
	for _, u := range reserve {
		seq, owner, err := s.uniqueHolder(ctx, u, optimistic)
		if err != nil {
			return nil, err
		}
		if owner != "" && owner != id {
			return nil, &TakenError{Name: u.Name}
		}
		data, _ := json.Marshal(uniqueRecord{Owner: id})
		msgs = append(msgs, messaging.Expect(&nats.Msg{Subject: s.cfg.uniqueSubject(u), Data: data}, messaging.ExpectLastSubjectSequence(seq)))
	}
	for _, u := range release {
		seq, owner, err := s.uniqueHolder(ctx, u, false)
		if err != nil {
			return nil, err
		}
		if owner != id {
			continue // not ours (any more): nothing to give up
		}
		data, _ := json.Marshal(uniqueRecord{})
		msgs = append(msgs, messaging.Expect(&nats.Msg{Subject: s.cfg.uniqueSubject(u), Data: data}, messaging.ExpectLastSubjectSequence(seq)))
	}
	return msgs, nil
}

// uniqueHolder returns the sequence and holder of u's subject; optimistic
// assumes it was never used, without asking.
func (s *Store[T]) uniqueHolder(ctx context.Context, u Unique, optimistic bool) (uint64, string, error) {
	if optimistic {
		return 0, "", nil
	}
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.uniqueSubject(u))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", unavailable(err)
	}
	var r uniqueRecord
	_ = json.Unmarshal(m.Data, &r)
	return m.Sequence, r.Owner, nil
}

// diff is what a holds that b does not.
func diff(a, b []Unique) []Unique {
	var out []Unique
	for _, u := range a {
		if !slices.Contains(b, u) {
			out = append(out, u)
		}
	}
	return out
}

// takenBy returns a *TakenError for the first value of us held by another
// entity than id.
func (s *Store[T]) takenBy(ctx context.Context, id string, us []Unique) error {
	for _, u := range us {
		_, owner, err := s.uniqueHolder(ctx, u, false)
		if err != nil {
			return err
		}
		if owner != "" && owner != id {
			return &TakenError{Name: u.Name}
		}
	}
	return nil
}

// written records a stored change in the caches and returns its record.
func (s *Store[T]) written(ctx context.Context, id string, ch Change[T], seq uint64) Record[T] {
	present := !s.cfg.Ends(ch.Type)
	if s.local != nil {
		s.local.Put(id, seq, ch.State, present)
	}
	if s.shared != nil {
		if present {
			s.shared.Put(ctx, id, int64(seq), record[T]{State: ch.State, Seq: seq})
		} else {
			s.shared.Absent(ctx, id, int64(seq))
		}
	}
	return Record[T]{State: ch.State, Seq: seq}
}
