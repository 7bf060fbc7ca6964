package notifications

import (
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

// routes lists every subject the notifications service serves, each wired
// to the handler that serves it. (micro endpoint names allow no dots,
// hence the dashes.)
func routes(h *hooks, dl deadLetters) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("webhooks-list", handleList(h),
			messaging.WithSubject(contract.SubjectWebhooksList),
			messaging.WithHTTP("GET /v1/webhooks"),
			messaging.WithDescription("List the webhooks, without their secrets (secret_set instead)."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("webhooks-put", handlePut(h),
			messaging.WithSubject(contract.SubjectWebhooksPut),
			messaging.WithHTTP("PUT /v1/webhooks/{id}"),
			messaging.WithDescription("Create or replace a webhook: id, url, secret, subjects (filters under users.events.> or orders.events.>)."),
			messaging.WithMaxPayload(64<<10)),
		messaging.Typed("webhooks-delete", handleDelete(h),
			messaging.WithSubject(contract.SubjectWebhooksDelete),
			messaging.WithHTTP("DELETE /v1/webhooks/{id}"),
			messaging.WithDescription("Delete a webhook and its queued deliveries; 404 when unknown."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("deadletters-list", handleDeadLetters(dl),
			messaging.WithSubject(contract.SubjectDeadLettersList),
			messaging.WithHTTP("GET /v1/deadletters"),
			messaging.WithDescription("List failed deliveries, of one webhook or all, paginated with limit and after (the id of the last one seen)."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("deadletters-replay", handleReplay(dl),
			messaging.WithSubject(contract.SubjectDeadLettersReplay),
			messaging.WithHTTP("POST /v1/deadletters/replay"),
			messaging.WithDescription("Deliver a dead letter again ({\"id\"}) or all of a webhook's ({\"webhook_id\", \"all\": true}), and remove it from the list."),
			messaging.WithMaxPayload(4<<10)),
	}
}

// errorRules map the core's domain errors onto wire codes: the one place
// the notifications service decides them.
func errorRules() []messaging.ErrorRule {
	return []messaging.ErrorRule{
		{Err: ErrWebhookNotFound, Code: wire.CodeNotFound},
		{Err: messaging.ErrDeadLetterNotFound, Code: wire.CodeNotFound},
		{Err: ErrWebhookChanged, Code: wire.CodeConflict},
		{Err: ErrNoTask, Code: wire.CodeConflict},
	}
}
