package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

// How writes stay correct with one message per step
//
// JetStream makes one message conditional on the last sequence of a
// subject filter, and nothing more (its atomic batches would do more, but
// on an R1 file stream the server stages each batch in a file store of its
// own, which makes them about a hundred times slower than plain
// publishes). So a write is a few single messages, each conditional:
//
//  1. Claims: for each unique value the new state takes, a claim record
//     naming the entity, conditional on the value's subject being as the
//     writer read it (free, released, or held by an entity that does not
//     hold it any more). A new entity also writes its listing entry and,
//     with an idempotency key, its idempotency record.
//  2. Commit: the event, conditional on the entity's write filter (its
//     events and its fence) being at the sequence the writer read.
//  3. Releases, once committed: the values the new state gave up.
//
// An entity holds a value when its current state has it; a claim alone
// holds nothing. A writer that finds a value claimed by an entity whose
// state does not have it cannot tell a write in flight from one that died
// half-way, so it fences that entity first: it puts a fence message on the
// entity's fence subject, conditional on the entity's write filter being
// as it read it. From then on that entity's write in flight cannot commit
// (its condition no longer holds), and the value is free to take. Whoever
// is first of the fence and the commit wins; the other fails and looks
// again. No clock, no grace period, no lock, no leftover that needs
// repair, and the same on one server and on a replicated stream.

// Unique is a value that at most one entity may hold at a time, such as
// an email address, under a name that says what it is ("email").
type Unique struct {
	Name  string
	Value string
}

// Change is one event: its type and the entity's state after it. The
// unique values the state holds (Config.Uniques) are claimed and released
// by comparing it with the state before.
type Change[T any] struct {
	Type  string
	State T
}

// Idempotency makes a create safe to retry: the first create with Key
// records which entity it makes; a later one with the same Key and
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

// claimRecord is what a unique value's subject holds: the entity that
// claimed it, or "" once released.
type claimRecord struct {
	Owner string `json:"owner"`
}

// attempts bounds the tries of a write that met a concurrent one.
const attempts = 6

// errAgain says that a write met a concurrent one and may succeed if made
// again with what the stream holds now.
var errAgain = errors.New("concurrent write; try again")

// Create stores a new entity id with its first event. With an idempotency
// key, a retry returns the first attempt's entity. Errors: *TakenError
// (ErrTaken) for a unique value held by another entity, ErrKeyReused,
// ErrKeyInFlight, and ErrStale when id exists already.
func (s *Store[T]) Create(ctx context.Context, id string, ch Change[T], idem *Idempotency) (Record[T], error) {
	for attempt := range attempts {
		rec, err := s.create(ctx, id, ch, idem, attempt == 0)
		if !errors.Is(err, errAgain) {
			return rec, err
		}
		backoff(ctx, attempt)
	}
	if idem != nil {
		return Record[T]{}, ErrKeyInFlight
	}
	return Record[T]{}, fmt.Errorf("create %s: %w", id, ErrStale)
}

// create makes one attempt. The first assumes its unique values were never
// claimed (one round trip less).
func (s *Store[T]) create(ctx context.Context, id string, ch Change[T], idem *Idempotency, optimistic bool) (Record[T], error) {
	var base uint64 // the entity's write filter sequence the commit expects
	if !optimistic {
		// An earlier attempt may have been fenced: this one starts from
		// what the stream holds now, and claims anew.
		base = s.writeSeq(ctx, id)
	}
	if idem != nil {
		first, seq, done, err := s.idempotent(ctx, id, idem)
		if err != nil || done != nil {
			if done != nil {
				s.answered(ctx, done.Seq)
				return *done, err
			}
			return Record[T]{}, err
		}
		if first != id {
			// A first attempt that did not commit, now fenced: finish
			// it, under its id.
			id, base = first, seq
			ch.State = s.cfg.WithKey(ch.State, id)
		}
	}
	// Claims and the listing entry, side by side.
	msgs := []func(context.Context) error{func(ctx context.Context) error {
		_, err := s.pub.PublishMsgs(ctx, messaging.Expect(&nats.Msg{Subject: s.cfg.indexSubject(s.cfg.Listing(ch.State), id)},
			messaging.ExpectLastSubjectSequence(0)))
		if messaging.IsWrongLastSequence(err) {
			return nil // written by an earlier attempt of this create
		}
		return err
	}}
	for _, u := range s.uniques(ch) {
		msgs = append(msgs, func(ctx context.Context) error { return s.claim(ctx, id, u, optimistic) })
	}
	if err := all(ctx, msgs); err != nil {
		return Record[T]{}, err
	}
	ack, err := s.commit(ctx, id, ch, base)
	if err != nil {
		if errors.Is(err, ErrStale) {
			// Fenced, or the id exists. With a key, the next attempt
			// finds what the key made; else look again (as taken), or
			// the id was never new.
			if idem == nil {
				if _, lerr := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.EntityFilter(id)); lerr == nil {
					return Record[T]{}, fmt.Errorf("%s exists: %w", id, ErrStale)
				}
			}
			return Record[T]{}, errAgain
		}
		return Record[T]{}, err
	}
	return s.written(ctx, id, ch, ack.Sequence), nil
}

// idempotent records that this create (of id) is the first with idem's
// key, or finds the first: done is set when the first create's entity is
// the answer; otherwise first is the id to create, with the sequence its
// commit expects (a fenced first attempt).
func (s *Store[T]) idempotent(ctx context.Context, id string, idem *Idempotency) (first string, seq uint64, done *Record[T], err error) {
	var committed bool
	data, _ := json.Marshal(idemRecord{ID: id, Fingerprint: idem.Fingerprint})
	_, err = s.pub.PublishMsgs(ctx, messaging.Expect(&nats.Msg{Subject: s.cfg.idempotencySubject(idem.Key), Data: data},
		messaging.ExpectLastSubjectSequence(0), messaging.WithMsgTTL(s.cfg.IdempotencyTTL)))
	if err == nil {
		return id, 0, nil, nil
	}
	if !messaging.IsWrongLastSequence(err) {
		return "", 0, nil, unavailable(err)
	}
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.idempotencySubject(idem.Key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, nil, errAgain // expired meanwhile
	}
	if err != nil {
		return "", 0, nil, unavailable(err)
	}
	var r idemRecord
	if json.Unmarshal(m.Data, &r) != nil || r.ID == "" {
		return "", 0, nil, errAgain
	}
	if r.Fingerprint != idem.Fingerprint {
		return "", 0, nil, ErrKeyReused
	}
	if rec, err := s.Get(ctx, r.ID); err == nil {
		return "", 0, &rec, nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", 0, nil, err
	}
	// Not committed when Get looked. What follows is conditional on the
	// entity's write filter as read now: a commit that lands after this
	// read makes the fence (or this attempt's own commit) fail, and the
	// next attempt finds the entity. Without it, a first attempt that
	// commits between the Get and the fence would be followed by a
	// second create of the same entity.
	seq, committed, err = s.lastWrite(ctx, r.ID)
	switch {
	case err != nil:
		return "", 0, nil, err
	case committed:
		return "", 0, nil, errAgain
	case r.ID == id:
		// Recorded by an earlier attempt of this very create.
		return id, seq, nil, nil
	}
	// The first attempt has not committed: fence it, then finish it.
	seq, err = s.fence(ctx, r.ID, seq)
	if err != nil {
		return "", 0, nil, err
	}
	return r.ID, seq, nil, nil
}

// lastWrite is the last sequence of id's write filter (0 when empty), and
// whether the message there is an event (the entity exists) rather than a
// fence.
func (s *Store[T]) lastWrite(ctx context.Context, id string) (seq uint64, committed bool, err error) {
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.WriteFilter(id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, unavailable(err)
	}
	return m.Sequence, m.Subject != s.cfg.FenceSubject(id), nil
}

// Append stores the next event of the entity that prev (as Get returned
// it) is, conditional on the entity being unchanged since: ErrStale when
// it changed; *TakenError for a unique value held by another entity.
func (s *Store[T]) Append(ctx context.Context, prev Record[T], ch Change[T]) (Record[T], error) {
	id := s.cfg.Key(prev.State)
	before := s.held(prev.State)
	after := s.uniques(ch)
	for attempt := range attempts {
		var claims []func(context.Context) error
		for _, u := range diff(after, before) {
			claims = append(claims, func(ctx context.Context) error { return s.claim(ctx, id, u, false) })
		}
		err := all(ctx, claims)
		if errors.Is(err, errAgain) {
			backoff(ctx, attempt)
			continue
		}
		if err != nil {
			return Record[T]{}, err
		}
		ack, err := s.commit(ctx, id, ch, prev.Seq)
		if err != nil {
			if errors.Is(err, ErrStale) {
				s.forget(ctx, id, prev.Seq)
			}
			return Record[T]{}, err
		}
		rec := s.written(ctx, id, ch, ack.Sequence)
		s.release(ctx, id, diff(before, after), ack.Sequence)
		return rec, nil
	}
	return Record[T]{}, fmt.Errorf("%s: %w", id, ErrStale)
}

// commit stores ch's event, conditional on id's write filter being at
// expect; ErrStale when it is not.
func (s *Store[T]) commit(ctx context.Context, id string, ch Change[T], expect uint64) (*jetstream.PubAck, error) {
	eventID := ulid.Make().String()
	msg, err := s.pub.Msg(ctx, messaging.OutEvent{
		Subject: s.cfg.EventSubject(id, ch.Type),
		Type:    ch.Type,
		ID:      eventID,
		Version: s.cfg.Version(ch.State),
		Data:    s.cfg.Encode(ch.Type, eventID, s.cfg.Now().UTC(), ch.State),
	})
	if err != nil {
		return nil, err
	}
	ack, err := s.pub.PublishMsgs(ctx, messaging.Expect(msg, messaging.ExpectLastSequenceFor(s.cfg.WriteFilter(id), expect)))
	switch {
	case messaging.IsWrongLastSequence(err):
		return nil, fmt.Errorf("%s: %w", id, ErrStale)
	case err != nil:
		return nil, unavailable(err)
	}
	return ack, nil
}

// claim writes a claim of u for id. A value held by another entity is a
// *TakenError; one claimed by an entity that does not hold it is taken
// over once that entity is fenced. optimistic assumes u was never claimed.
func (s *Store[T]) claim(ctx context.Context, id string, u Unique, optimistic bool) error {
	var expect uint64
	if !optimistic {
		seq, owner, err := s.claimOf(ctx, u)
		if err != nil {
			return err
		}
		if owner != "" && owner != id {
			state, ownerSeq, present, err := s.read(ctx, owner)
			if err != nil {
				return err
			}
			if present && slices.Contains(s.held(state), u) {
				return &TakenError{Name: u.Name}
			}
			// Claimed, not held: a write in flight, or one that died.
			// Make sure it cannot commit, then take the value.
			if _, err := s.fence(ctx, owner, ownerSeq); err != nil {
				return err
			}
		}
		expect = seq
	}
	data, _ := json.Marshal(claimRecord{Owner: id})
	_, err := s.pub.PublishMsgs(ctx, messaging.Expect(&nats.Msg{Subject: s.cfg.uniqueSubject(u), Data: data},
		messaging.ExpectLastSubjectSequence(expect)))
	switch {
	case messaging.IsWrongLastSequence(err):
		return errAgain // claimed meanwhile (or not as never used): look again
	case err != nil:
		return unavailable(err)
	}
	return nil
}

// claimOf returns the sequence and the claimer of u's subject ("" when
// never claimed or released).
func (s *Store[T]) claimOf(ctx context.Context, u Unique) (uint64, string, error) {
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.uniqueSubject(u))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", unavailable(err)
	}
	var r claimRecord
	_ = json.Unmarshal(m.Data, &r)
	return m.Sequence, r.Owner, nil
}

// fence makes every write of id that expects its write filter at seq
// fail, and returns the fence's sequence. It fails with errAgain when id
// was written meanwhile.
func (s *Store[T]) fence(ctx context.Context, id string, seq uint64) (uint64, error) {
	ack, err := s.pub.PublishMsgs(ctx, messaging.Expect(&nats.Msg{Subject: s.cfg.FenceSubject(id)},
		messaging.ExpectLastSequenceFor(s.cfg.WriteFilter(id), seq)))
	switch {
	case messaging.IsWrongLastSequence(err):
		return 0, errAgain
	case err != nil:
		return 0, unavailable(err)
	}
	return ack.Sequence, nil
}

// writeSeq is the last sequence of id's write filter (0 when none, or
// when the stream cannot say: a fence then fails and is tried again).
func (s *Store[T]) writeSeq(ctx context.Context, id string) uint64 {
	m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.WriteFilter(id))
	if err != nil {
		return 0
	}
	return m.Sequence
}

// release gives up the values id no longer holds as of its event at
// commit. Only a claim made before that event is released: a later write
// of id may have claimed the value back. It is best effort: a claim left
// behind holds nothing (the entity's state decides) and is taken over by
// the next writer that wants it.
func (s *Store[T]) release(ctx context.Context, id string, us []Unique, commit uint64) {
	for _, u := range us {
		seq, owner, err := s.claimOf(ctx, u)
		if err != nil || owner != id || seq > commit {
			continue
		}
		data, _ := json.Marshal(claimRecord{})
		_, _ = s.pub.PublishMsgs(ctx, messaging.Expect(&nats.Msg{Subject: s.cfg.uniqueSubject(u), Data: data},
			messaging.ExpectLastSubjectSequence(seq)))
	}
}

// uniques are the unique values the state after ch holds.
func (s *Store[T]) uniques(ch Change[T]) []Unique {
	if s.cfg.Ends(ch.Type) {
		return nil
	}
	return s.held(ch.State)
}

// held are the unique values state holds.
func (s *Store[T]) held(state T) []Unique {
	if s.cfg.Uniques == nil {
		return nil
	}
	return s.cfg.Uniques(state)
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

// all runs fns side by side and returns the first error, errAgain last:
// a definite answer (taken, unavailable) wins over "try again".
func all(ctx context.Context, fns []func(context.Context) error) error {
	if len(fns) == 1 {
		return fns[0](ctx)
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn(ctx) })
	}
	wg.Wait()
	var again error
	for _, err := range errs {
		switch {
		case errors.Is(err, errAgain):
			again = err
		case err != nil:
			return err
		}
	}
	return again
}

// backoff waits a little before attempt+1, growing, so that two writers
// that keep meeting drift apart.
func backoff(ctx context.Context, attempt int) {
	t := time.NewTimer(time.Duration(attempt+1) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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
	s.answered(ctx, seq)
	return Record[T]{State: ch.State, Seq: seq}
}

// answered names the event at seq in the reply to the request ctx belongs
// to (Switchboard-Stream and Switchboard-Sequence), so every service that
// writes through the store gives its callers read-your-writes: the
// messaging client sends the position back on its next requests. Outside
// a request it does nothing.
func (s *Store[T]) answered(ctx context.Context, seq uint64) {
	messaging.SetReplyHeader(ctx, wire.HeaderStream, s.cfg.Stream.Name)
	messaging.SetReplyHeader(ctx, wire.HeaderSequence, strconv.FormatUint(seq, 10))
}

// forget drops what the caches hold of id as of seq: a write found it
// stale, so the next read goes to the stream.
func (s *Store[T]) forget(ctx context.Context, id string, seq uint64) {
	if s.local != nil {
		s.local.Invalidate(id, seq+1)
	}
	if s.shared != nil {
		_ = s.shared.Invalidate(ctx, id, int64(seq+1))
	}
}
