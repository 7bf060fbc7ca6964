package users

import (
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
)

// routes lists every subject the users service serves, each wired to the
// handler that serves it.
func routes(store Store) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("create", handleCreate(store),
			messaging.WithSubject(contract.SubjectCreate),
			messaging.WithHTTP("POST /v1/users"),
			messaging.WithDescription("Create a user. Honours the Idempotency-Key header."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("get", handleGet(store),
			messaging.WithSubject(contract.SubjectGet),
			messaging.WithHTTP("GET /v1/users/{id}"),
			messaging.WithDescription("Get a user by id."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("update", handleUpdate(store),
			messaging.WithSubject(contract.SubjectUpdate),
			messaging.WithHTTP("PATCH /v1/users/{id}"),
			messaging.WithDescription("Change fields of a user at the version you read; 409 when stale."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("delete", handleDelete(store),
			messaging.WithSubject(contract.SubjectDelete),
			messaging.WithHTTP("DELETE /v1/users/{id}"),
			messaging.WithDescription("Delete a user, optionally at a version."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("list", handleList(store),
			messaging.WithSubject(contract.SubjectList),
			messaging.WithHTTP("GET /v1/users"),
			messaging.WithDescription("List users in creation order, paginated with limit and after."),
			messaging.WithMaxPayload(4<<10)),
	}
}
