package eventstore

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
	"github.com/devloop/switchboard/wire"
)

// Domain errors. Services map them onto wire codes in their endpoint
// layer (typically 404, 409, 409, 422 and 409).
var (
	// ErrNotFound: no such entity, or its last event ended it.
	ErrNotFound = errors.New("not found")
	// ErrStale: the entity changed after it was read; read it again.
	ErrStale = errors.New("changed concurrently")
	// ErrTaken: a unique value is held by another entity (see TakenError).
	ErrTaken = errors.New("already taken")
	// ErrKeyReused: an idempotency key came again with another request.
	ErrKeyReused = errors.New("idempotency key reused for a different request")
	// ErrKeyInFlight: the first request with an idempotency key is still
	// being written; retry.
	ErrKeyInFlight = errors.New("a request with this idempotency key is in progress")
	// ErrBadCursor: a listing's after names no entity of that listing.
	ErrBadCursor = errors.New("unknown cursor")
)

// TakenError says which unique value a write could not reserve.
type TakenError struct {
	Name string // the Unique's name, e.g. "email"
}

func (e *TakenError) Error() string { return e.Name + " " + ErrTaken.Error() }

// Is makes a TakenError match ErrTaken.
func (e *TakenError) Is(target error) bool { return target == ErrTaken }

// VersionError is a write made at a version the entity is no longer at:
// it matches ErrStale, and tells the caller what to read again.
type VersionError struct {
	Entity       string // "user", "order"
	Got, Current int64  // Current 0: it changed concurrently, version unknown
}

func (e *VersionError) Error() string {
	switch {
	case e.Got == 0:
		return fmt.Sprintf("the %s changed concurrently; read it again and retry", e.Entity)
	case e.Current == 0:
		return fmt.Sprintf("version %d is stale: the %s changed concurrently", e.Got, e.Entity)
	}
	return fmt.Sprintf("version %d is stale: the %s is at version %d", e.Got, e.Entity, e.Current)
}

// Is makes a VersionError match ErrStale.
func (e *VersionError) Is(target error) bool { return target == ErrStale }

// Defaults of Config.
const (
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultPageScan       = 10 // index entries read per requested item, at most
)

// Config describes one kind of entity and the stream that holds it. The
// function fields are the entity's subject layout and event envelope.
type Config[T any] struct {
	// Stream is the stream's configuration, as the service declares it;
	// the store adds its fence and internal subjects and
	// per-message TTLs (for idempotency records).
	Stream jetstream.StreamConfig
	// EventFilter matches the events of every entity, e.g.
	// "users.events.*".
	EventFilter string
	// Internal is the subject prefix of the store's own messages, e.g.
	// "users.internal"; it must be covered by no event subject.
	Internal string
	// EventSubject is the subject of an event of type typ about entity id.
	EventSubject func(id, typ string) string
	// EntityFilter matches every event of entity id: its subject, or a
	// wildcard over its subjects.
	EntityFilter func(id string) string
	// IDOf returns the entity an event or fence subject is about ("" if
	// none).
	IDOf func(subject string) string
	// FenceSubjects is the stream subject of every entity's fence, e.g.
	// "users.fence.*", and FenceSubject the fence of entity id: a message
	// another writer puts there makes a write of id that is in flight
	// fail (see write.go). WriteFilter matches an entity's events and its
	// fence, e.g. "users.*.<id>": writes are conditional on it.
	FenceSubjects string
	FenceSubject  func(id string) string
	WriteFilter   func(id string) string
	// WithKey returns state as the state of entity id: an idempotent
	// retry finishes the first attempt under the first attempt's id.
	WithKey func(state T, id string) T
	// Encode builds an event's payload: its type, event id, time and the
	// entity's state after it.
	Encode func(typ, eventID string, at time.Time, state T) any
	// Decode reads an event's payload: its type and the state after it.
	Decode func(data []byte) (typ string, state T, err error)
	// Key is the entity id in a state.
	Key func(state T) string
	// Version is the entity's version in a state, for the
	// Switchboard-Version header.
	Version func(state T) int64
	// Ends reports whether an event of type typ ends the entity (a delete).
	Ends func(typ string) bool
	// Listing is the listing a new entity joins ("" for one listing of
	// all); List pages through one listing in creation order.
	Listing func(state T) string
	// Uniques, when set, are the values a state holds that no other
	// entity may hold at the same time (an email address, say). Writes
	// claim them before their events and release them after (see write.go).
	Uniques func(state T) []Unique

	// IdempotencyTTL is how long an idempotency key is remembered
	// (default DefaultIdempotencyTTL).
	IdempotencyTTL time.Duration
	// Cache configures the caches in front of the stream: the in-process
	// one, and the shared one when Cache.Backend is set, whose
	// invalidator is the durable consumer "<stream, lower case>-cache".
	Cache cache.Config
	// Replication is applied to the stream where Stream says nothing
	// (its replicas and placement).
	Replication messaging.Replication
	// Logger; nil discards.
	Logger *slog.Logger
	// Telemetry measures the store's publishes, its cache invalidator and
	// its caches (cache="<stream, lower case>"), and traces the
	// publishes; nil does neither.
	Telemetry *telemetry.Telemetry
	// Now is the clock of event times; nil means time.Now.
	Now func() time.Time
}

func (c *Config[T]) check() error {
	switch {
	case c.Stream.Name == "" || c.EventFilter == "" || c.Internal == "":
		return fmt.Errorf("eventstore: stream, event filter and internal prefix are required")
	case c.EventSubject == nil || c.EntityFilter == nil || c.IDOf == nil || c.Encode == nil || c.Decode == nil ||
		c.Key == nil || c.Version == nil || c.Ends == nil || c.Listing == nil || c.FenceSubjects == "" ||
		c.FenceSubject == nil || c.WriteFilter == nil || c.WithKey == nil:
		return fmt.Errorf("eventstore %s: every subject and envelope function is required", c.Stream.Name)
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// streamConfig is the stream as the store needs it.
func (c *Config[T]) streamConfig() jetstream.StreamConfig {
	s := c.Stream
	s.Subjects = append([]string(nil), s.Subjects...)
	for _, own := range []string{c.FenceSubjects, c.Internal + ".>"} {
		if !slices.Contains(s.Subjects, own) {
			s.Subjects = append(s.Subjects, own)
		}
	}
	s.AllowMsgTTL = true
	s.AllowDirect = true
	return c.Replication.Stream(s)
}

// Subjects of the store's own messages.
func (c *Config[T]) uniqueSubject(u Unique) string {
	return c.Internal + ".unique." + u.Name + "." + hash(u.Value)
}

func (c *Config[T]) indexFilter(listing string) string {
	return c.Internal + ".index." + token(listing) + ".*"
}

func (c *Config[T]) indexSubject(listing, id string) string {
	return c.Internal + ".index." + token(listing) + "." + id
}

func (c *Config[T]) idempotencySubject(key string) string {
	return c.Internal + ".idem." + hash(key)
}

func (c *Config[T]) schemaSubject() string { return c.Internal + ".schema" }

// invalidator is the durable consumer that keeps the shared cache current.
func (c *Config[T]) invalidator() string { return strings.ToLower(c.Stream.Name) + "-cache" }

// token makes a listing name a subject token: "" is "all".
func token(listing string) string {
	if listing == "" {
		return "_all"
	}
	return listing
}

// ErrorRules map the store's idempotency errors to wire codes, alike for
// every service that uses the store: a key reused for another request is
// a 422, a key whose first request is still in progress a 409 (retry).
// Services add their own rules for ErrStale and ErrBadCursor, whose hints
// name their entity.
func ErrorRules() []messaging.ErrorRule {
	return []messaging.ErrorRule{
		{Err: ErrKeyReused, Code: wire.CodeUnprocessable, Field: wire.HeaderIdempotencyKey, Hint: "this key was used for a different request; use a new key"},
		{Err: ErrKeyInFlight, Code: wire.CodeConflict, Field: wire.HeaderIdempotencyKey, Hint: "the first request with this key is still in progress; retry"},
	}
}

// EventStream is the configuration of an entity stream as the store
// expects it: file storage, limits retention (the stream is the source of
// truth, nothing is ever acknowledged away), deletes and purges denied, and a
// two-minute window of Nats-Msg-Id de-duplication for resent writes. The
// store adds its own fence and internal subjects (Config.Stream).
func EventStream(name, description string, subjects ...string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: description,
		Subjects:    subjects,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		DenyDelete:  true,
		// Nobody purges the record of events, the operator neither.
		DenyPurge:  true,
		Duplicates: 2 * time.Minute,
	}
}
