package users

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Key-value buckets kept beside the USERS stream.
const (
	// EmailBucket reserves each email (normalised) for one user id.
	EmailBucket = "USERS_EMAILS"
	// IdempotencyBucket maps an Idempotency-Key to the id of the user its
	// first create made; entries expire after IdempotencyTTL.
	IdempotencyBucket = "USERS_IDEMPOTENCY"
	IdempotencyTTL    = 24 * time.Hour
	// ReservationGrace is how long an email reservation whose user does
	// not (yet) have that email is honoured: long enough for any write in
	// flight to finish, after which the reservation counts as left over by
	// a crashed write and is reclaimed.
	ReservationGrace = time.Minute
)

// EventStore keeps users as events on the USERS stream: the last message on
// users.events.<id> is the user's current state, and the subject's history
// is its audit trail.
type EventStore struct {
	js          jetstream.JetStream
	stream      jetstream.Stream
	emails      jetstream.KeyValue
	idempotency *messaging.IdempotencyKeys
	view        *messaging.View[contract.User]
	logger      *slog.Logger
	now         func() time.Time
}

// StreamConfig is the USERS stream's configuration.
func StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        contract.Stream,
		Description: "Users service events; the last message per subject is the user's state.",
		Subjects:    []string{contract.EventSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		AllowDirect: true,
		DenyDelete:  true,
		Duplicates:  2 * time.Minute,
	}
}

// OpenEventStore declares the stream and buckets (idempotently) and starts
// the list view. Close stops the view.
func OpenEventStore(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (*EventStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	stream, err := messaging.EnsureStream(ctx, js, StreamConfig())
	if err != nil {
		return nil, err
	}
	emails, err := messaging.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      EmailBucket,
		Description: "users: email (lower case, base64url) -> <user id>:<version>",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	idem, err := messaging.OpenIdempotencyKeys(ctx, js, IdempotencyBucket, IdempotencyTTL)
	if err != nil {
		return nil, err
	}
	v, err := messaging.StartView(ctx, stream, messaging.ViewConfig[contract.User]{
		Filter: contract.EventSubjects,
		Logger: logger,
		Decode: func(msg jetstream.Msg) (string, contract.User, bool, error) {
			ev, err := decodeEvent(msg.Data())
			return ev.User.ID, ev.User, ev.Type != contract.EventDeleted, err
		},
	})
	if err != nil {
		return nil, err
	}
	return &EventStore{js: js, stream: stream, emails: emails, idempotency: idem, view: v, logger: logger, now: time.Now}, nil
}

// Close stops the list view.
func (s *EventStore) Close() { s.view.Stop() }

// Get reads the last event on the user's subject with a direct get.
func (s *EventStore) Get(ctx context.Context, id string) (contract.User, error) {
	u, _, err := s.current(ctx, id)
	return u, err
}

// current returns the user and the stream sequence of its last event.
func (s *EventStore) current(ctx context.Context, id string) (contract.User, uint64, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, contract.EventSubjectPrefix+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return contract.User{}, 0, notFound(id)
	}
	if err != nil {
		return contract.User{}, 0, fmt.Errorf("read user %s: %w", id, err)
	}
	ev, err := decodeEvent(msg.Data)
	if err != nil {
		return contract.User{}, 0, fmt.Errorf("user %s at sequence %d: %w", id, msg.Sequence, err)
	}
	if ev.Type == contract.EventDeleted {
		return contract.User{}, msg.Sequence, notFound(id)
	}
	return ev.User, msg.Sequence, nil
}

func decodeEvent(data []byte) (contract.Event, error) {
	var ev contract.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

func notFound(id string) error {
	return wire.NewError(wire.CodeNotFound, fmt.Sprintf("user %s not found", id))
}

func emailTaken() error {
	return wire.NewError(wire.CodeConflict, "email already taken",
		wire.Detail{Field: "email", Message: "another user has this email"})
}

// Create makes a user: reserve the email, then append user.created with the
// expectation that the subject is empty. See docs/users.md for what happens
// when the process dies between the two steps.
func (s *EventStore) Create(ctx context.Context, in NewUser, key string) (contract.User, error) {
	id := ulid.Make().String()
	if key != "" {
		first, err := s.idempotency.Claim(ctx, key, id)
		if err != nil {
			return contract.User{}, err
		}
		if first != id {
			// A retry: the first attempt's user, once it exists.
			if u, err := s.Get(ctx, first); err == nil || !errors.Is(err, wire.ErrNotFound) {
				return u, err
			}
			// The first attempt did not finish: finish it, same id.
			id = first
		}
	}
	email := strings.TrimSpace(in.Email)
	if err := s.reserveEmail(ctx, email, id, 1); err != nil {
		return contract.User{}, err
	}
	now := s.now().UTC()
	u := contract.User{ID: id, Name: strings.TrimSpace(in.Name), Email: email, Age: in.Age, Version: 1, CreatedAt: now, UpdatedAt: now}
	if _, err := s.append(ctx, contract.EventCreated, u, 0); err != nil {
		if errors.Is(err, wire.ErrConflict) && key != "" {
			// A concurrent retry with the same key got there first.
			return s.Get(ctx, id)
		}
		return contract.User{}, err
	}
	return u, nil
}

// Update appends user.updated if the user is at version.
func (s *EventStore) Update(ctx context.Context, id string, version int64, ch Changes) (contract.User, error) {
	u, seq, err := s.current(ctx, id)
	if err != nil {
		return contract.User{}, err
	}
	if u.Version != version {
		return contract.User{}, staleVersion(version, u.Version)
	}
	next := u
	if ch.Name != nil {
		next.Name = strings.TrimSpace(*ch.Name)
	}
	if ch.Age != nil {
		next.Age = *ch.Age
	}
	oldEmail := u.Email
	emailChanged := false
	if ch.Email != nil {
		next.Email = strings.TrimSpace(*ch.Email)
		emailChanged = contract.NormalizeEmail(next.Email) != contract.NormalizeEmail(oldEmail)
	}
	if emailChanged {
		if err := s.reserveEmail(ctx, next.Email, id, u.Version+1); err != nil {
			return contract.User{}, err
		}
	}
	next.Version++
	next.UpdatedAt = s.now().UTC()
	if _, err := s.append(ctx, contract.EventUpdated, next, seq); err != nil {
		if errors.Is(err, wire.ErrConflict) {
			// The new email's reservation is not released: reservations
			// are per user id, so a concurrent update of this user that
			// won may hold the same one. If nobody does, reserveEmail
			// reclaims it after ReservationGrace.
			return contract.User{}, wire.NewError(wire.CodeConflict,
				fmt.Sprintf("version %d is stale: the user changed concurrently", version),
				wire.Detail{Field: "version", Message: "read the user again and retry"})
		}
		return contract.User{}, err
	}
	if emailChanged {
		s.releaseEmail(ctx, oldEmail, id, next.Version)
	}
	return next, nil
}

// Delete appends user.deleted and releases the email.
func (s *EventStore) Delete(ctx context.Context, id string, version int64) (contract.User, error) {
	u, seq, err := s.current(ctx, id)
	if err != nil {
		return contract.User{}, err
	}
	if version > 0 && u.Version != version {
		return contract.User{}, staleVersion(version, u.Version)
	}
	gone := u
	gone.Version++
	gone.UpdatedAt = s.now().UTC()
	if _, err := s.append(ctx, contract.EventDeleted, gone, seq); err != nil {
		if errors.Is(err, wire.ErrConflict) {
			return contract.User{}, wire.NewError(wire.CodeConflict, "the user changed concurrently; read it again and retry")
		}
		return contract.User{}, err
	}
	s.releaseEmail(ctx, u.Email, id, gone.Version)
	return gone, nil
}

// List pages through the view, after making sure it has seen every event
// stored before the call, so callers see their own writes.
func (s *EventStore) List(ctx context.Context, after string, limit int) ([]contract.User, string, error) {
	if err := s.view.Sync(ctx); err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	users, next := s.view.Page(after, limit, nil)
	return users, next, nil
}

func staleVersion(got, current int64) error {
	return wire.NewError(wire.CodeConflict,
		fmt.Sprintf("version %d is stale: the user is at version %d", got, current),
		wire.Detail{Field: "version", Message: fmt.Sprintf("current version is %d", current)})
}

// append publishes one event on the user's subject, conditional on the
// subject's last sequence being lastSeq (0: no event yet).
func (s *EventStore) append(ctx context.Context, typ string, u contract.User, lastSeq uint64) (*jetstream.PubAck, error) {
	ev := contract.Event{Type: typ, ID: ulid.Make().String(), OccurredAt: u.UpdatedAt, User: u}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	msg := &nats.Msg{
		Subject: contract.EventSubjectPrefix + u.ID,
		Data:    data,
		Header: nats.Header{
			wire.HeaderEventType: []string{typ},
			wire.HeaderEventID:   []string{ev.ID},
			wire.HeaderVersion:   []string{strconv.FormatInt(u.Version, 10)},
			"Content-Type":       []string{"application/json"},
		},
	}
	if rid := wire.RequestID(ctx); rid != "" {
		msg.Header.Set(wire.HeaderRequestID, rid)
	}
	return messaging.Publish(ctx, s.js, msg, messaging.WithMsgID(ev.ID), messaging.ExpectLastSubjectSequence(lastSeq))
}

func emailKey(email string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(contract.NormalizeEmail(email)))
}

// A reservation's value is "<user id>:<version>": the user, and the version
// of that user which holds (or is about to hold) the email. The version is
// what makes releases safe against concurrent writes of the same user.
func reservation(id string, version int64) []byte {
	return []byte(id + ":" + strconv.FormatInt(version, 10))
}

func parseReservation(v []byte) (id string, version int64) {
	id, ver, _ := strings.Cut(string(v), ":")
	version, _ = strconv.ParseInt(ver, 10, 64)
	return id, version
}

// reserveEmail makes email belong to user id at version. A reservation held
// by another id is honoured while its user has that email, or while it is
// younger than ReservationGrace (a write in flight); otherwise it was left
// by a write that died half-way, and is reclaimed. A reservation of the
// same id is raised to version, so that a release by an earlier version's
// write leaves it alone.
func (s *EventStore) reserveEmail(ctx context.Context, email, id string, version int64) error {
	key := emailKey(email)
	for range 5 {
		_, err := s.emails.Create(ctx, key, reservation(id, version))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("reserve email: %w", err)
		}
		entry, err := s.emails.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("read email reservation: %w", err)
		}
		owner, held := parseReservation(entry.Value())
		if owner == id {
			if held >= version {
				// Held for this version or a later one: a writer that
				// read newer state; if it wins, we lose anyway.
				return nil
			}
			if _, err := s.emails.Update(ctx, key, reservation(id, version), entry.Revision()); err != nil {
				if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
					continue // changed meanwhile: look again
				}
				return fmt.Errorf("renew email reservation: %w", err)
			}
			return nil
		}
		if s.now().Sub(entry.Created()) < ReservationGrace {
			return emailTaken()
		}
		u, err := s.Get(ctx, owner)
		if err == nil && contract.NormalizeEmail(u.Email) == contract.NormalizeEmail(email) {
			return emailTaken()
		}
		if err != nil && !errors.Is(err, wire.ErrNotFound) {
			return err
		}
		s.logger.Warn("reclaiming a stale email reservation", slog.String("owner", owner), slog.String("user_id", id))
		if err := s.emails.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("reclaim email reservation: %w", err)
		}
	}
	return emailTaken()
}

// releaseEmail frees email after the write that committed user id at
// version dropped it. It deletes only a reservation made for an earlier
// version, at the revision it read: a reservation for version or later
// belongs to a write that came after this one (which may have taken the
// email back) and is left alone. A failure only leaves a stale
// reservation, which reserveEmail reclaims, so it is logged, not returned.
func (s *EventStore) releaseEmail(ctx context.Context, email, id string, version int64) {
	key := emailKey(email)
	entry, err := s.emails.Get(ctx, key)
	if err != nil {
		return
	}
	if owner, held := parseReservation(entry.Value()); owner != id || held >= version {
		return
	}
	if err := s.emails.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		s.logger.Warn("could not release email reservation", slog.String("user_id", id), slog.String("error", err.Error()))
	}
}
