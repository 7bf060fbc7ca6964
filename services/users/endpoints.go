package users

import (
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// routes lists every subject the users service serves, each wired to the
// handler that serves it.
func routes(s *store, maxReply int) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("create", handleCreate(s),
			messaging.WithSubject(contract.SubjectCreate),
			messaging.WithHTTP("POST /v1/users"),
			messaging.WithDescription("Create a user. Honours the Idempotency-Key header."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("get", handleGet(s),
			messaging.WithSubject(contract.SubjectGet),
			messaging.WithHTTP("GET /v1/users/{id}"),
			messaging.WithDescription("Get a user by id."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("update", handleUpdate(s),
			messaging.WithSubject(contract.SubjectUpdate),
			messaging.WithHTTP("PATCH /v1/users/{id}"),
			messaging.WithDescription("Change fields of a user at the version you read; 409 when stale."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("delete", handleDelete(s),
			messaging.WithSubject(contract.SubjectDelete),
			messaging.WithHTTP("DELETE /v1/users/{id}"),
			messaging.WithDescription("Delete a user, optionally at a version."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("list", handleList(s, maxReply),
			messaging.WithSubject(contract.SubjectList),
			messaging.WithHTTP("GET /v1/users"),
			messaging.WithDescription("List users in creation order, paginated with limit and after."),
			messaging.WithMaxPayload(4<<10)),
	}
}

// errorRules map the store's domain errors onto wire codes: the one place
// the users service decides them.
func errorRules() []messaging.ErrorRule {
	return append(eventstore.ErrorRules(), []messaging.ErrorRule{
		{Err: ErrNotFound, Code: wire.CodeNotFound},
		{Err: eventstore.ErrStale, Code: wire.CodeConflict, Field: "version", Hint: "read the user again and retry"},
		{Err: ErrEmailTaken, Code: wire.CodeConflict, Field: "email", Hint: "another user has this email"},
		{Err: eventstore.ErrBadCursor, Code: wire.CodeBadRequest, Field: "after", Hint: "not a cursor of this listing: use the next of the previous page"},
	}...)
}
