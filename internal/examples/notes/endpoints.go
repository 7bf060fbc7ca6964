package notes

import (
	"context"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/internal/examples/notes/contract"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

// routes lists every subject the service serves.
func routes(s *store) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("create", func(ctx context.Context, req contract.CreateRequest) (contract.Note, error) {
			key, fp, err := messaging.IdempotencyKey(ctx)
			if err != nil {
				return contract.Note{}, err
			}
			var idem *eventstore.Idempotency
			if key != "" {
				idem = &eventstore.Idempotency{Key: key, Fingerprint: fp}
			}
			rec, err := s.create(ctx, req.Title, req.Body, idem)
			return rec.State, err
		}, messaging.WithSubject(contract.SubjectCreate), messaging.WithHTTP("POST /v1/notes"),
			messaging.WithDescription("Create a note. Honours the Idempotency-Key header.")),
		messaging.Typed("get", func(ctx context.Context, req contract.GetRequest) (contract.Note, error) {
			rec, err := s.get(ctx, req.ID)
			return rec.State, err
		}, messaging.WithSubject(contract.SubjectGet), messaging.WithHTTP("GET /v1/notes/{id}"),
			messaging.WithDescription("Read a note.")),
		messaging.Typed("update", func(ctx context.Context, req contract.UpdateRequest) (contract.Note, error) {
			rec, err := s.update(ctx, req.ID, req.Version, req.Body)
			return rec.State, err
		}, messaging.WithSubject(contract.SubjectUpdate), messaging.WithHTTP("PUT /v1/notes/{id}"),
			messaging.WithDescription("Replace a note's body at the version you read; 409 when stale.")),
	}
}

// errorRules give the domain errors their wire codes, in one place.
func errorRules() []messaging.ErrorRule {
	return append(eventstore.ErrorRules(),
		messaging.ErrorRule{Err: ErrNotFound, Code: wire.CodeNotFound},
		messaging.ErrorRule{Err: eventstore.ErrStale, Code: wire.CodeConflict, Field: "version", Hint: "read the note again and retry"})
}
