// Package contract is the public contract of the users service: its
// subjects, request and reply payloads, and the events it publishes. Other
// services import this package (never the service itself) to call users
// over NATS or to consume its events.
package contract

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/wire"
)

// Service identity and subjects.
const (
	ServiceName = "users"
	Version     = "1.0.0"

	SubjectCreate = "users.create"
	SubjectGet    = "users.get"
	SubjectUpdate = "users.update"
	SubjectDelete = "users.delete"
	SubjectList   = "users.list"

	// Stream is the JetStream stream holding every user's events, the
	// source of truth. EventSubjectPrefix + id is one user's subject.
	Stream             = "USERS"
	EventSubjectPrefix = "users.events."
	EventSubjects      = "users.events.*"
	// InternalSubjectPrefix starts the subjects of the store's own
	// messages in USERS (email reservations, the listing, idempotency
	// keys). They are no events: consumers filter on EventSubjects.
	InternalSubjectPrefix = "users.internal"
	// FenceSubjects hold the store's fences (users.fence.<id>), which
	// stop a write of that user that was left half-way. No events either.
	FenceSubjects      = "users.fence.*"
	FenceSubjectPrefix = "users.fence."
)

// Limits of the user model.
const (
	MaxNameLength  = 100
	MaxEmailLength = 254
	MaxAge         = 150
	DefaultLimit   = 50
	MaxLimit       = 100
)

// Event types, in the Switchboard-Event-Type header and the "type" field.
const (
	EventCreated = "user.created"
	EventUpdated = "user.updated"
	EventDeleted = "user.deleted"
)

// User is a user as every endpoint returns it.
type User struct {
	ID        string    `json:"id" jsonschema:"description=Time-sortable unique id (ULID)"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Age       int       `json:"age"`
	Version   int64     `json:"version" jsonschema:"description=1 when created; each change adds 1"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Event is the payload of every message on users.events.<id>: the event's
// type and id, and the user's full state after the change (for
// user.deleted, the state it had when deleted, with the new version).
type Event struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	User       User      `json:"user"`
}

// CreateRequest is the payload of users.create.
type CreateRequest struct {
	Name  string `json:"name" jsonschema:"minLength=1,maxLength=100"`
	Email string `json:"email" jsonschema:"format=email"`
	Age   *int   `json:"age" jsonschema:"minimum=0,maximum=150"`
}

// Validate checks every field.
func (r CreateRequest) Validate() error {
	var v wire.Violations
	checkName(&v, r.Name)
	checkEmail(&v, r.Email)
	if r.Age == nil {
		v.Add("age", "is required")
	} else {
		checkAge(&v, *r.Age)
	}
	return v.Err()
}

// GetRequest is the payload of users.get.
type GetRequest struct {
	ID string `json:"id"`
}

// Validate checks the id.
func (r GetRequest) Validate() error {
	var v wire.Violations
	checkID(&v, r.ID)
	return v.Err()
}

// UpdateRequest is the payload of users.update: the version the caller read
// and the fields to change (absent fields keep their value).
type UpdateRequest struct {
	ID      string  `json:"id"`
	Version int64   `json:"version" jsonschema:"minimum=1"`
	Name    *string `json:"name,omitempty"`
	Email   *string `json:"email,omitempty"`
	Age     *int    `json:"age,omitempty"`
}

// Validate checks the id, the version and every field present.
func (r UpdateRequest) Validate() error {
	var v wire.Violations
	checkID(&v, r.ID)
	if r.Version < 1 {
		v.Add("version", "is required: the version you read (1 or more)")
	}
	if r.Name == nil && r.Email == nil && r.Age == nil {
		v.Add("", "nothing to change: give at least one of name, email, age")
	}
	if r.Name != nil {
		checkName(&v, *r.Name)
	}
	if r.Email != nil {
		checkEmail(&v, *r.Email)
	}
	if r.Age != nil {
		checkAge(&v, *r.Age)
	}
	return v.Err()
}

// DeleteRequest is the payload of users.delete. Version is optional; when
// given, the delete only happens at that version.
type DeleteRequest struct {
	ID      string `json:"id"`
	Version int64  `json:"version,omitempty" jsonschema:"minimum=0"`
}

// Validate checks the id and version.
func (r DeleteRequest) Validate() error {
	var v wire.Violations
	checkID(&v, r.ID)
	if r.Version < 0 {
		v.Add("version", "must be 1 or more when given")
	}
	return v.Err()
}

// DeleteResponse is the reply of users.delete.
type DeleteResponse struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// ListRequest is the payload of users.list: users in id order (creation
// order), after the given id.
type ListRequest struct {
	Limit *int   `json:"limit,omitempty" jsonschema:"minimum=1,maximum=100,default=50"`
	After string `json:"after,omitempty" jsonschema:"description=The next cursor of the previous page"`
}

// PageSize is the limit asked for, or DefaultLimit when none was (an
// explicit 0 is refused by Validate).
func (r ListRequest) PageSize() int {
	if r.Limit == nil {
		return DefaultLimit
	}
	return *r.Limit
}

// Validate checks the limit and cursor.
func (r ListRequest) Validate() error {
	var v wire.Violations
	if r.Limit != nil && (*r.Limit < 1 || *r.Limit > MaxLimit) {
		v.Add("limit", "must be between 1 and %d (default %d)", MaxLimit, DefaultLimit)
	}
	if r.After != "" {
		n := len(v)
		checkID(&v, r.After)
		if len(v) > n { // the cursor's problem, not the limit's
			v[len(v)-1].Field = "after"
		}
	}
	return v.Err()
}

// ListResponse is the reply of users.list. Next is empty on the last page.
type ListResponse struct {
	Users []User `json:"users"`
	Next  string `json:"next,omitempty"`
}

// NormalizeEmail is the form in which emails are compared: unique
// case-insensitively.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// ValidID reports whether id is a well-formed user id. Checking it also
// keeps wildcards and dots out of the subjects built from ids.
func ValidID(id string) bool {
	_, err := ulid.ParseStrict(id)
	return err == nil && strings.ToUpper(id) == id
}

func checkID(v *wire.Violations, id string) {
	switch {
	case id == "":
		v.Add("id", "is required")
	case !ValidID(id):
		v.Add("id", "is not a user id (26 characters, as returned by users.create)")
	}
}

func checkName(v *wire.Violations, name string) {
	n := utf8.RuneCountInString(strings.TrimSpace(name))
	switch {
	case !utf8.ValidString(name):
		v.Add("name", "must be valid UTF-8")
	case n < 1 || n > MaxNameLength:
		v.Add("name", "must be 1 to %d characters after trimming spaces", MaxNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		v.Add("name", "must not contain control characters")
	}
}

func checkEmail(v *wire.Violations, email string) {
	email = strings.TrimSpace(email)
	if email == "" {
		v.Add("email", "is required")
		return
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || len(email) > MaxEmailLength || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		v.Add("email", "must be a plain address like ada@example.com (at most %d characters)", MaxEmailLength)
	}
}

func checkAge(v *wire.Violations, age int) {
	if age < 0 || age > MaxAge {
		v.Add("age", "must be between 0 and %d", MaxAge)
	}
}
