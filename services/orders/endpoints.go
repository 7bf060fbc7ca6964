package orders

import (
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

// routes lists every subject the orders service serves, each wired to the
// handler that serves it.
func routes(s *store, users Users, maxReply int) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("create", handleCreate(s, users),
			messaging.WithSubject(contract.SubjectCreate),
			messaging.WithHTTP("POST /v1/orders"),
			messaging.WithDescription("Place an order for an existing user. Honours the Idempotency-Key header."),
			messaging.WithMaxPayload(64<<10)),
		messaging.Typed("get", handleGet(s),
			messaging.WithSubject(contract.SubjectGet),
			messaging.WithHTTP("GET /v1/orders/{id}"),
			messaging.WithDescription("Get an order by id."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("list", handleList(s, maxReply),
			messaging.WithSubject(contract.SubjectList),
			messaging.WithHTTP("GET /v1/orders"),
			messaging.WithDescription("List a user's orders in creation order, paginated with limit and after."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("cancel", handleCancel(s),
			messaging.WithSubject(contract.SubjectCancel),
			messaging.WithHTTP("POST /v1/orders/{id}/cancel"),
			messaging.WithDescription("Cancel a placed order at the version you read; 409 when stale or already cancelled."),
			messaging.WithMaxPayload(4<<10)),
	}
}

// errorRules map the store's and the users check's domain errors onto wire
// codes: the one place the orders service decides them.
func errorRules() []messaging.ErrorRule {
	return append(eventstore.ErrorRules(), []messaging.ErrorRule{
		{Err: ErrNotFound, Code: wire.CodeNotFound},
		{Err: ErrAlreadyCancelled, Code: wire.CodeConflict, Field: "id", Hint: "already cancelled"},
		{Err: eventstore.ErrStale, Code: wire.CodeConflict, Field: "version", Hint: "read the order again and retry"},
		{Err: ErrNoSuchUser, Code: wire.CodeBadRequest, Field: "user_id", Hint: "no such user"},
		{Err: ErrUsersUnavailable, Code: wire.CodeUnavailable},
		{Err: eventstore.ErrBadCursor, Code: wire.CodeBadRequest, Field: "after", Hint: "not an order of this user's listing: use the next of the previous page"},
	}...)
}
