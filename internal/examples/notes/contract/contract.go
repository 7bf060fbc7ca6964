// Package contract is the public contract of the notes example service:
// its subjects, payloads and events, and a typed client function per
// endpoint. Like every contract package it imports only wire, so a caller
// gets the contract without nats.go.
package contract

import (
	"context"
	"strings"
	"time"

	"github.com/devloop/switchboard/wire"
)

// Service identity, subjects and events.
const (
	ServiceName = "notes"
	Version     = "0.1.0"

	SubjectCreate = "notes.create"
	SubjectGet    = "notes.get"
	SubjectUpdate = "notes.update"

	// Stream holds the events; the last one on notes.events.<id> is the
	// note's state.
	Stream             = "NOTES"
	EventSubjects      = "notes.events.*"
	EventSubjectPrefix = "notes.events."
	// FenceSubjects and InternalSubjectPrefix are the event store's own
	// subjects in the stream (no events there).
	FenceSubjects         = "notes.fence.*"
	FenceSubjectPrefix    = "notes.fence."
	InternalSubjectPrefix = "notes.internal"

	EventCreated = "note.created"
	EventUpdated = "note.updated"
)

// Note is a note as the service returns it.
type Note struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Event is the payload of every message on notes.events.<id>.
type Event struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Note       Note      `json:"note"`
}

// CreateRequest creates a note.
type CreateRequest struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// Validate implements wire.Validator: the service answers 400 with one
// detail per problem before the handler runs.
func (r CreateRequest) Validate() error {
	var v wire.Violations
	if t := strings.TrimSpace(r.Title); t == "" || len(t) > 200 {
		v.Add("title", "must be 1 to 200 characters")
	}
	return v.Err()
}

// GetRequest reads a note.
type GetRequest struct {
	ID string `json:"id"`
}

// Validate implements wire.Validator.
func (r GetRequest) Validate() error {
	var v wire.Violations
	if r.ID == "" {
		v.Add("id", "is required")
	}
	return v.Err()
}

// UpdateRequest replaces a note's body at the version the caller read.
type UpdateRequest struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	Body    string `json:"body"`
}

// Validate implements wire.Validator.
func (r UpdateRequest) Validate() error {
	var v wire.Violations
	if r.ID == "" {
		v.Add("id", "is required")
	}
	if r.Version < 1 {
		v.Add("version", "must be at least 1")
	}
	return v.Err()
}

// CreateNote calls notes.create.
func CreateNote(ctx context.Context, c wire.Caller, req CreateRequest, opts ...wire.CallOption) (Note, error) {
	return wire.Call[CreateRequest, Note](ctx, c, SubjectCreate, req, opts...)
}

// GetNote calls notes.get.
func GetNote(ctx context.Context, c wire.Caller, req GetRequest, opts ...wire.CallOption) (Note, error) {
	return wire.Call[GetRequest, Note](ctx, c, SubjectGet, req, opts...)
}

// UpdateNote calls notes.update.
func UpdateNote(ctx context.Context, c wire.Caller, req UpdateRequest, opts ...wire.CallOption) (Note, error) {
	return wire.Call[UpdateRequest, Note](ctx, c, SubjectUpdate, req, opts...)
}
