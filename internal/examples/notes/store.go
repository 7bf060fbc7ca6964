package notes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/internal/examples/notes/contract"
)

// ErrNotFound is the notes' own not-found error; endpoints.go gives it
// its wire code.
var ErrNotFound = errors.New("note not found")

// entity is the layout of notes in the event store.
func entity() eventstore.Config[contract.Note] {
	return eventstore.Config[contract.Note]{
		Stream:        eventstore.EventStream(contract.Stream, "Notes example: events on notes.events.<id>.", contract.EventSubjects),
		EventFilter:   contract.EventSubjects,
		Internal:      contract.InternalSubjectPrefix,
		EventSubject:  func(id, _ string) string { return contract.EventSubjectPrefix + id },
		EntityFilter:  func(id string) string { return contract.EventSubjectPrefix + id },
		IDOf:          func(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] },
		FenceSubjects: contract.FenceSubjects,
		FenceSubject:  func(id string) string { return contract.FenceSubjectPrefix + id },
		WriteFilter:   func(id string) string { return "notes.*." + id },
		WithKey:       func(n contract.Note, id string) contract.Note { n.ID = id; return n },
		Encode: func(typ, eventID string, at time.Time, n contract.Note) any {
			return contract.Event{Type: typ, ID: eventID, OccurredAt: at, Note: n}
		},
		Decode: func(data []byte) (string, contract.Note, error) {
			var ev contract.Event
			err := json.Unmarshal(data, &ev)
			return ev.Type, ev.Note, err
		},
		Key:     func(n contract.Note) string { return n.ID },
		Version: func(n contract.Note) int64 { return n.Version },
		Ends:    func(string) bool { return false },
		Listing: func(contract.Note) string { return "" },
	}
}

// store holds the notes' rules; the event store does the rest.
type store struct {
	es *eventstore.Store[contract.Note]
}

func (s *store) create(ctx context.Context, title, body string, idem *eventstore.Idempotency) (eventstore.Record[contract.Note], error) {
	now := time.Now().UTC()
	n := contract.Note{ID: ulid.Make().String(), Title: strings.TrimSpace(title), Body: body, Version: 1, CreatedAt: now, UpdatedAt: now}
	return s.es.Create(ctx, n.ID, eventstore.Change[contract.Note]{Type: contract.EventCreated, State: n}, idem)
}

func (s *store) get(ctx context.Context, id string) (eventstore.Record[contract.Note], error) {
	rec, err := s.es.Get(ctx, id)
	if errors.Is(err, eventstore.ErrNotFound) {
		return rec, fmt.Errorf("note %s: %w", id, ErrNotFound)
	}
	return rec, err
}

func (s *store) update(ctx context.Context, id string, version int64, body string) (eventstore.Record[contract.Note], error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return cur, err
	}
	if cur.State.Version != version {
		return cur, &eventstore.VersionError{Entity: "note", Got: version, Current: cur.State.Version}
	}
	next := cur.State
	next.Body, next.Version, next.UpdatedAt = body, next.Version+1, time.Now().UTC()
	rec, err := s.es.Append(ctx, cur, eventstore.Change[contract.Note]{Type: contract.EventUpdated, State: next})
	if errors.Is(err, eventstore.ErrStale) {
		return rec, &eventstore.VersionError{Entity: "note", Got: version}
	}
	return rec, err
}
