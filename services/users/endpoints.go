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
			messaging.WithDescription("Create a user. Honours the Idempotency-Key header."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("get", handleGet(store),
			messaging.WithSubject(contract.SubjectGet),
			messaging.WithDescription("Get a user by id."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("update", handleUpdate(store),
			messaging.WithSubject(contract.SubjectUpdate),
			messaging.WithDescription("Change fields of a user at the version you read; 409 when stale."),
			messaging.WithMaxPayload(16<<10)),
		messaging.Typed("delete", handleDelete(store),
			messaging.WithSubject(contract.SubjectDelete),
			messaging.WithDescription("Delete a user, optionally at a version."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("list", handleList(store),
			messaging.WithSubject(contract.SubjectList),
			messaging.WithDescription("List users in creation order, paginated with limit and after."),
			messaging.WithMaxPayload(4<<10)),
	}
}
