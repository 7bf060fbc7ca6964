package eventstore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
)

func TestCreateGetAppendEnd(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	ctx := t.Context()
	id := ulid.Make().String()
	first := create(t, s, id, "ada", "o1")
	got, err := s.Get(ctx, id)
	if err != nil || got != first {
		t.Fatalf("get = %+v, %v; want %+v", got, err, first)
	}
	second, err := s.Append(ctx, first, eventstore.Change[thing]{Type: changed, State: next(first.State)})
	if err != nil || second.Seq <= first.Seq || second.State.Version != 2 {
		t.Fatalf("append = %+v, %v", second, err)
	}
	// Appending on the first read again: the entity changed since.
	if _, err := s.Append(ctx, first, eventstore.Change[thing]{Type: changed, State: next(first.State)}); !errors.Is(err, eventstore.ErrStale) {
		t.Fatalf("stale append: %v, want ErrStale", err)
	}
	gone, err := s.Append(ctx, second, eventstore.Change[thing]{Type: removed, State: next(second.State)})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, id)
	if !errors.Is(err, eventstore.ErrNotFound) || rec.Seq != gone.Seq {
		t.Fatalf("get after the end = %+v, %v; want ErrNotFound at %d", rec, err, gone.Seq)
	}
	if _, err := s.Get(ctx, ulid.Make().String()); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	// Creating an id that exists is stale.
	if _, err := s.Create(ctx, id, eventstore.Change[thing]{Type: created, State: thing{ID: id, Version: 1, Handle: "x", Owner: "o1"}}, nil); !errors.Is(err, eventstore.ErrStale) {
		t.Fatalf("create an existing id: %v, want ErrStale", err)
	}
}

func TestUniqueValues(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	ctx := t.Context()
	a := create(t, s, ulid.Make().String(), "ada", "o1")
	var taken *eventstore.TakenError
	if _, err := s.Create(ctx, "B1", eventstore.Change[thing]{Type: created, State: thing{ID: "B1", Version: 1, Handle: "ada"}}, nil); !errors.As(err, &taken) || taken.Name != "handle" {
		t.Fatalf("create with a taken handle: %v, want a TakenError for handle", err)
	}
	b := create(t, s, ulid.Make().String(), "bob", "o1")
	// Taking a held value by an update is refused too, and changes nothing.
	if _, err := s.Append(ctx, b, eventstore.Change[thing]{Type: changed, State: thing{ID: b.State.ID, Version: 2, Handle: "ada", Owner: "o1"}}); !errors.Is(err, eventstore.ErrTaken) {
		t.Fatalf("update to a taken handle: %v", err)
	}
	// A change that gives the value up frees it for another, in the same write.
	a2, err := s.Append(ctx, a, eventstore.Change[thing]{Type: changed, State: thing{ID: a.State.ID, Version: 2, Handle: "countess", Owner: "o1"}})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := s.Append(ctx, b, eventstore.Change[thing]{Type: changed, State: thing{ID: b.State.ID, Version: 2, Handle: "ada", Owner: "o1"}})
	if err != nil {
		t.Fatalf("take a freed handle: %v", err)
	}
	// A change that keeps the value keeps it held.
	if _, err := s.Append(ctx, a2, eventstore.Change[thing]{Type: changed, State: thing{ID: a.State.ID, Version: 3, Handle: "countess", Owner: "o1", Note: "kept"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "C1", eventstore.Change[thing]{Type: created, State: thing{ID: "C1", Version: 1, Handle: "countess"}}, nil); !errors.Is(err, eventstore.ErrTaken) {
		t.Fatalf("the kept handle was freed: %v", err)
	}
	// Ending an entity frees its values.
	if _, err := s.Append(ctx, b2, eventstore.Change[thing]{Type: removed, State: next(b2.State)}); err != nil {
		t.Fatal(err)
	}
	create(t, s, ulid.Make().String(), "ada", "o2")
}

func TestUniqueValueRace(t *testing.T) {
	w := newWorld(t)
	replicas := []*eventstore.Store[thing]{w.open(cache.Config{}), w.open(cache.Config{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]int{}
	for i := range 40 {
		for r := range 2 {
			wg.Go(func() {
				id := ulid.Make().String()
				handle := fmt.Sprintf("h%d", i)
				_, err := replicas[r].Create(t.Context(), id, eventstore.Change[thing]{Type: created, State: thing{ID: id, Version: 1, Handle: handle, Owner: "o"}}, nil)
				if err != nil && !errors.Is(err, eventstore.ErrTaken) {
					t.Errorf("create: %v", err)
				}
				if err == nil {
					mu.Lock()
					won[handle]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for i := range 40 {
		if n := won[fmt.Sprintf("h%d", i)]; n != 1 {
			t.Errorf("handle h%d: %d creates won, want 1", i, n)
		}
	}
}

func TestIdempotency(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	ctx := t.Context()
	key := eventstore.Idempotency{Key: "signup-1", Fingerprint: "fp-a"}
	mk := func(handle string) eventstore.Change[thing] {
		id := ulid.Make().String()
		return eventstore.Change[thing]{Type: created, State: thing{ID: id, Version: 1, Handle: handle, Owner: "o"}}
	}
	ch := mk("ada")
	first, err := s.Create(ctx, ch.State.ID, ch, &key)
	if err != nil {
		t.Fatal(err)
	}
	// The retry is a new attempt with a new id, as a handler makes it.
	retry := mk("ada")
	got, err := s.Create(ctx, retry.State.ID, retry, &key)
	if err != nil || got.State != first.State {
		t.Fatalf("retry = %+v, %v; want the first %+v", got, err, first)
	}
	other := mk("bob")
	if _, err := s.Create(ctx, other.State.ID, other, &eventstore.Idempotency{Key: "signup-1", Fingerprint: "fp-b"}); !errors.Is(err, eventstore.ErrKeyReused) {
		t.Fatalf("same key, other request: %v, want ErrKeyReused", err)
	}
	// Concurrent firsts with one key make one entity.
	var wg sync.WaitGroup
	ids := make(chan string, 10)
	for range 10 {
		wg.Go(func() {
			ch := mk("carol")
			rec, err := s.Create(ctx, ch.State.ID, ch, &eventstore.Idempotency{Key: "signup-2", Fingerprint: "fp-c"})
			if errors.Is(err, eventstore.ErrKeyInFlight) {
				return // allowed: the caller retries
			}
			if err != nil {
				t.Errorf("concurrent create: %v", err)
				return
			}
			ids <- rec.State.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("concurrent creates with one key made %d entities", len(seen))
	}
}

func TestList(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	ctx := t.Context()
	var mine []string
	for i := range 25 {
		owner := "o1"
		if i%5 == 4 {
			owner = "o2"
		}
		rec := create(t, s, ulid.Make().String(), fmt.Sprint("h", i), owner)
		if owner == "o1" {
			mine = append(mine, rec.State.ID)
		}
	}
	// End every third of o1's.
	var live []string
	for i, id := range mine {
		if i%3 == 1 {
			rec, _ := s.Get(ctx, id)
			if _, err := s.Append(ctx, rec, eventstore.Change[thing]{Type: removed, State: next(rec.State)}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		live = append(live, id)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := s.List(ctx, eventstore.Query{Listing: "o1", After: after, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) > 4 {
			t.Fatalf("page of %d", len(page.Records))
		}
		for _, r := range page.Records {
			got = append(got, r.State.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
		if pages > 20 {
			t.Fatal("no end")
		}
	}
	if strings.Join(got, ",") != strings.Join(live, ",") {
		t.Fatalf("listing = %v\nwant      %v (creation order, ended left out)", got, live)
	}
	if _, err := s.List(ctx, eventstore.Query{Listing: "o1", After: ulid.Make().String(), Limit: 4}); !errors.Is(err, eventstore.ErrBadCursor) {
		t.Fatalf("unknown cursor: %v", err)
	}
	empty, err := s.List(ctx, eventstore.Query{Listing: "nobody", Limit: 4})
	if err != nil || len(empty.Records) != 0 || empty.Next != "" {
		t.Fatalf("empty listing = %+v, %v", empty, err)
	}
	// A byte budget cuts the page short, with a cursor to go on.
	page, err := s.List(ctx, eventstore.Query{Listing: "o1", Limit: 10, MaxBytes: 200})
	if err != nil || len(page.Records) == 0 || len(page.Records) >= 10 || page.Next == "" {
		t.Fatalf("page under 200 bytes = %d records, next %q, %v", len(page.Records), page.Next, err)
	}
	data, _ := json.Marshal(page.Records)
	if size := len(data); size > 600 { // records carry seq too; states are under 200
		t.Fatalf("page of %d bytes", size)
	}
}

// One bad message on an entity's subject (not an event, or an event about
// another entity, or without its headers) does not make the entity
// unreadable or unwritable, and puts no ghost in a listing.
func TestInvalidMessagesAreSkipped(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{LocalEntries: -1})
	ctx := t.Context()
	a := create(t, s, ulid.Make().String(), "ada", "o1")
	subject := "things.events." + a.State.ID
	ghost, _ := json.Marshal(thingEvent{Type: created, ID: "e", Thing: thing{ID: "GHOST", Version: 1, Handle: "g", Owner: "o1"}})
	forged, _ := json.Marshal(thingEvent{Type: changed, ID: "e", Thing: thing{ID: a.State.ID, Version: 9, Handle: "ada", Owner: "o1"}})
	for name, data := range map[string][]byte{"not json": []byte("not json"), "another entity": ghost, "no headers": forged} {
		t.Run(name, func(t *testing.T) {
			w.publish(subject, data, nil)
			got, err := s.Get(ctx, a.State.ID)
			if err != nil || got.State.Version != a.State.Version {
				t.Fatalf("get after a bad message = %+v, %v; want version %d", got, err, a.State.Version)
			}
			// Writing on top heals the entity.
			upd, err := s.Append(ctx, got, eventstore.Change[thing]{Type: changed, State: next(got.State)})
			if err != nil {
				t.Fatalf("append after a bad message: %v", err)
			}
			a = upd
		})
	}
	w.publish("things.events.GHOST", ghost, nil)
	page, err := s.List(ctx, eventstore.Query{Listing: "o1", Limit: 10})
	if err != nil || len(page.Records) != 1 || page.Records[0].State.ID != a.State.ID {
		t.Fatalf("listing = %+v, %v; want only %s", page.Records, err, a.State.ID)
	}
	if _, err := s.Get(ctx, "GHOST"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("a forged entity reads as %v, want ErrNotFound", err)
	}
}

// The writer sees its write at once; another replica sees it once the
// change feed delivered it, never an older state after that.
func TestReplicasStayCurrent(t *testing.T) {
	w := newWorld(t)
	writer, reader := w.open(cache.Config{}), w.open(cache.Config{})
	ctx := t.Context()
	a := create(t, writer, ulid.Make().String(), "ada", "o1")
	if got, err := reader.Get(ctx, a.State.ID); err != nil || got.State != a.State {
		t.Fatalf("reader get = %+v, %v", got, err)
	}
	cur := a
	for i := range 50 {
		st := next(cur.State)
		st.Note = fmt.Sprint(i)
		var err error
		if cur, err = writer.Append(ctx, cur, eventstore.Change[thing]{Type: changed, State: st}); err != nil {
			t.Fatal(err)
		}
		if got, err := writer.Get(ctx, a.State.ID); err != nil || got.State.Version != cur.State.Version {
			t.Fatalf("the writer reads %+v, %v after its write of version %d", got.State, err, cur.State.Version)
		}
		testkit.Eventually(t, 5*time.Second, time.Millisecond, func() error {
			got, err := reader.Get(ctx, a.State.ID)
			if err != nil || got.State.Version != cur.State.Version {
				return fmt.Errorf("reader at version %d (%v), want %d", got.State.Version, err, cur.State.Version)
			}
			return nil
		})
	}
	if st := reader.CacheStats().Local; st == nil || st.Hits == 0 || st.Invalidations == 0 {
		t.Fatalf("reader's cache stats %+v: want hits and invalidations", st)
	}
}

// A stream written by the earlier layout (events only) is brought up to
// date when a store opens it: its entities are listed, and their unique
// values held.
func TestOpenUpgradesAnOlderStream(t *testing.T) {
	w := newWorld(t)
	if _, err := messaging.EnsureStream(t.Context(), w.js, config().Stream); err != nil {
		t.Fatal(err)
	}
	ids := []string{ulid.Make().String(), ulid.Make().String(), ulid.Make().String()}
	for i, id := range ids {
		data, _ := json.Marshal(thingEvent{Type: created, ID: "e" + id, Thing: thing{ID: id, Version: 1, Handle: fmt.Sprint("old", i), Owner: "o1"}})
		w.publish("things.events."+id, data, nats.Header{"Switchboard-Event-Type": []string{created}})
	}
	gone, _ := json.Marshal(thingEvent{Type: removed, ID: "x", Thing: thing{ID: ids[1], Version: 2, Handle: "old1", Owner: "o1"}})
	w.publish("things.events."+ids[1], gone, nats.Header{"Switchboard-Event-Type": []string{removed}})

	s := w.open(cache.Config{})
	page, err := s.List(t.Context(), eventstore.Query{Listing: "o1", Limit: 10})
	if err != nil || len(page.Records) != 2 || page.Records[0].State.ID != ids[0] || page.Records[1].State.ID != ids[2] {
		t.Fatalf("listing after the upgrade = %+v, %v", page.Records, err)
	}
	if _, err := s.Create(t.Context(), "N1", eventstore.Change[thing]{Type: created, State: thing{ID: "N1", Version: 1, Handle: "old0"}}, nil); !errors.Is(err, eventstore.ErrTaken) {
		t.Fatalf("an old entity's handle is not held: %v", err)
	}
	create(t, s, ulid.Make().String(), "old1", "o1") // the ended one's is free
	// A second open does not upgrade again.
	w.open(cache.Config{})
	info, err := w.js.Stream(t.Context(), "THINGS")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := info.Info(t.Context(), jetstream.WithSubjectFilter("things.internal.schema"))
	if st.State.Subjects["things.internal.schema"] != 1 {
		t.Fatalf("schema markers: %v", st.State.Subjects)
	}
}

// A create that died after claiming a unique value, before committing,
// leaves a claim that holds nothing: the next writer that wants the value
// fences the dead create and takes it, and the dead create can no longer
// commit, even if its commit was only delayed.
func TestHalfWrittenCreateIsFencedAndItsClaimTakenOver(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	dead := ulid.Make().String()
	claim, _ := json.Marshal(map[string]string{"owner": dead})
	w.publish("things.internal.unique.handle."+hashOf("ada"), claim, nil)

	taker := create(t, s, ulid.Make().String(), "ada", "o1")
	// The dead create's commit, arriving late, conditional as the store
	// writes it: refused.
	ev, _ := json.Marshal(thingEvent{Type: created, ID: "late", Thing: thing{ID: dead, Version: 1, Handle: "ada", Owner: "o1"}})
	late := &nats.Msg{Subject: "things.events." + dead, Data: ev, Header: nats.Header{}}
	late.Header.Set("Nats-Expected-Last-Subject-Sequence", "0")
	late.Header.Set("Nats-Expected-Last-Subject-Sequence-Subject", "things.*."+dead)
	if _, err := w.js.PublishMsg(t.Context(), late); err == nil {
		t.Fatal("the fenced create committed after all")
	}
	if _, err := s.Get(t.Context(), dead); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the dead create exists: %v", err)
	}
	if got, err := s.Get(t.Context(), taker.State.ID); err != nil || got.State.Handle != "ada" {
		t.Fatalf("the taker = %+v, %v", got, err)
	}
}

// A create that died after its idempotency record is finished by the
// retry, under the first attempt's id.
func TestIdempotentRetryFinishesADeadFirstAttempt(t *testing.T) {
	w := newWorld(t)
	s := w.open(cache.Config{})
	first := ulid.Make().String()
	rec, _ := json.Marshal(map[string]string{"id": first, "fp": "fp-1"})
	w.publish("things.internal.idem."+hashOf("retry-me"), rec, nil)
	retry := ulid.Make().String()
	got, err := s.Create(t.Context(), retry, eventstore.Change[thing]{Type: created, State: thing{ID: retry, Version: 1, Handle: "h", Owner: "o"}},
		&eventstore.Idempotency{Key: "retry-me", Fingerprint: "fp-1"})
	if err != nil || got.State.ID != first {
		t.Fatalf("retry = %+v, %v; want the first attempt's id %s", got, err, first)
	}
	if _, err := s.Get(t.Context(), retry); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the retry's own id was created too: %v", err)
	}
}

// An update that meets a concurrent one fails as stale and leaves the
// caches so that the next read sees the winner.
func TestStaleWriteRefreshesTheCache(t *testing.T) {
	w := newWorld(t)
	a, b := w.open(cache.Config{}), w.open(cache.Config{})
	x := create(t, a, ulid.Make().String(), "x", "o")
	fromB, err := b.Get(t.Context(), x.State.ID)
	if err != nil {
		t.Fatal(err)
	}
	won, err := a.Append(t.Context(), x, eventstore.Change[thing]{Type: changed, State: next(x.State)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(t.Context(), fromB, eventstore.Change[thing]{Type: changed, State: next(fromB.State)}); !errors.Is(err, eventstore.ErrStale) {
		t.Fatalf("concurrent update: %v, want ErrStale", err)
	}
	if got, err := b.Get(t.Context(), x.State.ID); err != nil || got.Seq != won.Seq {
		t.Fatalf("b reads %+v, %v after losing; want the winner at %d", got, err, won.Seq)
	}
}

// hashOf is the store's digest of a unique value or key in subjects.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// Retries racing with one key, on two replicas, store one entity with one
// created event, and every caller that succeeds gets that entity's state:
// a first attempt that commits while a retry is about to fence it is found,
// not created a second time.
func TestIdempotentRacesStoreOneEvent(t *testing.T) {
	w := newWorld(t)
	replicas := []*eventstore.Store[thing]{w.open(cache.Config{}), w.open(cache.Config{})}
	ctx := t.Context()
	const keys, racers = 20, 8
	for k := range keys {
		key := eventstore.Idempotency{Key: fmt.Sprintf("race-%d", k), Fingerprint: "fp"}
		results := make([]eventstore.Record[thing], racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				id := ulid.Make().String()
				// Each attempt's state differs (as times of day do), so
				// an answer that is not the stored state shows.
				ch := eventstore.Change[thing]{Type: created, State: thing{ID: id, Version: 1, Handle: key.Key, Owner: "o", Note: fmt.Sprint(i)}}
				results[i], errs[i] = replicas[i%2].Create(ctx, id, ch, &key)
			})
		}
		wg.Wait()
		var stored *eventstore.Record[thing]
		for i := range racers {
			if errors.Is(errs[i], eventstore.ErrKeyInFlight) {
				continue // allowed: the caller retries
			}
			if errs[i] != nil {
				t.Fatalf("key %d racer %d: %v", k, i, errs[i])
			}
			if stored == nil {
				got, err := replicas[0].Get(ctx, results[i].State.ID)
				if err != nil {
					t.Fatal(err)
				}
				stored = &got
			}
			if results[i].State != stored.State {
				t.Fatalf("key %d racer %d got %+v; stored is %+v", k, i, results[i].State, stored.State)
			}
		}
		if stored == nil {
			continue
		}
		info, err := w.js.Stream(ctx, "THINGS")
		if err != nil {
			t.Fatal(err)
		}
		si, err := info.Info(ctx, jetstream.WithSubjectFilter("things.events."+stored.State.ID))
		if err != nil {
			t.Fatal(err)
		}
		if n := si.State.Subjects["things.events."+stored.State.ID]; n != 1 {
			t.Fatalf("key %d: entity %s has %d events, want 1 created", k, stored.State.ID, n)
		}
	}
}
