package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/services/users/contract"
)

// Domain errors of the users store; endpoints.go maps them onto wire
// codes. A write at a version the user is no longer at is an
// *eventstore.VersionError (eventstore.ErrStale).
var (
	ErrNotFound   = errors.New("user not found")
	ErrEmailTaken = errors.New("email already taken")
)

// NewUser is a validated create request.
type NewUser struct {
	Name  string
	Email string
	Age   int
}

// Changes are the fields an update sets; nil fields keep their value.
type Changes struct {
	Name  *string
	Email *string
	Age   *int
}

// Entity is the layout of users in the event store: the stream, its
// subjects and the event envelope, for tools that read the store.
func Entity() eventstore.Config[contract.User] {
	return eventstore.Config[contract.User]{
		Stream: eventstore.EventStream(contract.Stream,
			"Users service events; the last message on users.events.<id> is the user's state.",
			contract.EventSubjects),
		EventFilter:  contract.EventSubjects,
		Internal:     contract.InternalSubjectPrefix,
		EventSubject: func(id, _ string) string { return contract.EventSubjectPrefix + id },
		EntityFilter: func(id string) string { return contract.EventSubjectPrefix + id },
		IDOf: func(subject string) string {
			// users.events.<id> or users.fence.<id>
			return subject[strings.LastIndexByte(subject, '.')+1:]
		},
		FenceSubjects: contract.FenceSubjects,
		FenceSubject:  func(id string) string { return contract.FenceSubjectPrefix + id },
		WriteFilter:   func(id string) string { return "users.*." + id },
		WithKey:       func(u contract.User, id string) contract.User { u.ID = id; return u },
		Encode: func(typ, eventID string, at time.Time, u contract.User) any {
			return contract.Event{Type: typ, ID: eventID, OccurredAt: u.UpdatedAt, User: u}
		},
		Decode: func(data []byte) (string, contract.User, error) {
			var ev contract.Event
			err := json.Unmarshal(data, &ev)
			return ev.Type, ev.User, err
		},
		Key:     func(u contract.User) string { return u.ID },
		Version: func(u contract.User) int64 { return u.Version },
		Ends:    func(typ string) bool { return typ == contract.EventDeleted },
		Listing: func(contract.User) string { return "" },
		Uniques: func(u contract.User) []eventstore.Unique {
			return []eventstore.Unique{{Name: "email", Value: contract.NormalizeEmail(u.Email)}}
		},
	}
}

// store holds the users' rules: what a create, update and delete write,
// and which errors they end in. The event store does the rest.
type store struct {
	es  *eventstore.Store[contract.User]
	now func() time.Time
}

func (s *store) get(ctx context.Context, id string) (eventstore.Record[contract.User], error) {
	rec, err := s.es.Get(ctx, id)
	if errors.Is(err, eventstore.ErrNotFound) {
		return rec, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return rec, err
}

func (s *store) create(ctx context.Context, in NewUser, idem *eventstore.Idempotency) (contract.User, error) {
	now := s.now().UTC()
	u := contract.User{
		ID: ulid.Make().String(), Name: strings.TrimSpace(in.Name), Email: strings.TrimSpace(in.Email),
		Age: in.Age, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	rec, err := s.es.Create(ctx, u.ID, eventstore.Change[contract.User]{Type: contract.EventCreated, State: u}, idem)
	return rec.State, domain(err)
}

func (s *store) update(ctx context.Context, id string, version int64, ch Changes) (contract.User, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return contract.User{}, err
	}
	if cur.State.Version != version {
		return contract.User{}, &eventstore.VersionError{Entity: "user", Got: version, Current: cur.State.Version}
	}
	next := cur.State
	if ch.Name != nil {
		next.Name = strings.TrimSpace(*ch.Name)
	}
	if ch.Email != nil {
		next.Email = strings.TrimSpace(*ch.Email)
	}
	if ch.Age != nil {
		next.Age = *ch.Age
	}
	next.Version++
	next.UpdatedAt = s.now().UTC()
	rec, err := s.es.Append(ctx, cur, eventstore.Change[contract.User]{Type: contract.EventUpdated, State: next})
	if errors.Is(err, eventstore.ErrStale) {
		return contract.User{}, &eventstore.VersionError{Entity: "user", Got: version}
	}
	return rec.State, domain(err)
}

// remove deletes the user, at version when version > 0; the state it was
// deleted in goes in the event, with the version of the delete.
func (s *store) remove(ctx context.Context, id string, version int64) (contract.User, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return contract.User{}, err
	}
	if version > 0 && cur.State.Version != version {
		return contract.User{}, &eventstore.VersionError{Entity: "user", Got: version, Current: cur.State.Version}
	}
	gone := cur.State
	gone.Version++
	gone.UpdatedAt = s.now().UTC()
	rec, err := s.es.Append(ctx, cur, eventstore.Change[contract.User]{Type: contract.EventDeleted, State: gone})
	if errors.Is(err, eventstore.ErrStale) {
		return contract.User{}, &eventstore.VersionError{Entity: "user", Got: version}
	}
	return rec.State, domain(err)
}

func (s *store) list(ctx context.Context, after string, limit, maxBytes int) ([]contract.User, string, error) {
	page, err := s.es.List(ctx, eventstore.Query{After: after, Limit: limit, MaxBytes: maxBytes})
	if err != nil {
		return nil, "", domain(err)
	}
	users := make([]contract.User, 0, len(page.Records))
	for _, r := range page.Records {
		users = append(users, r.State)
	}
	return users, page.Next, nil
}

// domain turns the event store's errors about users into the users' own.
func domain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventstore.ErrTaken):
		return fmt.Errorf("%w", ErrEmailTaken)
	case errors.Is(err, eventstore.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
