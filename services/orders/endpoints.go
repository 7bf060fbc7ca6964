package orders

import (
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
)

// routes lists every subject the orders service serves, each wired to the
// handler that serves it.
func routes(s *store, users Users) []messaging.Endpoint {
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
		messaging.Typed("list", handleList(s),
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
