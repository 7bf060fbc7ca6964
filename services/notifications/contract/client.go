package contract

import (
	"context"

	"github.com/devloop/switchboard/wire"
)

// The typed client of the notifications service: one function per
// endpoint, over any wire.Caller (a *messaging.Client, say).

// PutWebhook calls notifications.webhooks.put.
func PutWebhook(ctx context.Context, c wire.Caller, w Webhook, opts ...wire.CallOption) (View, error) {
	return wire.Call[Webhook, View](ctx, c, SubjectWebhooksPut, w, opts...)
}

// ListWebhooks calls notifications.webhooks.list.
func ListWebhooks(ctx context.Context, c wire.Caller, opts ...wire.CallOption) (ListResponse, error) {
	return wire.Call[ListRequest, ListResponse](ctx, c, SubjectWebhooksList, ListRequest{}, opts...)
}

// DeleteWebhook calls notifications.webhooks.delete.
func DeleteWebhook(ctx context.Context, c wire.Caller, req DeleteRequest, opts ...wire.CallOption) (DeleteResponse, error) {
	return wire.Call[DeleteRequest, DeleteResponse](ctx, c, SubjectWebhooksDelete, req, opts...)
}

// ListDeadLetters calls notifications.deadletters.list.
func ListDeadLetters(ctx context.Context, c wire.Caller, req DeadLettersRequest, opts ...wire.CallOption) (DeadLettersResponse, error) {
	return wire.Call[DeadLettersRequest, DeadLettersResponse](ctx, c, SubjectDeadLettersList, req, opts...)
}

// ReplayDeadLetters calls notifications.deadletters.replay.
func ReplayDeadLetters(ctx context.Context, c wire.Caller, req ReplayRequest, opts ...wire.CallOption) (ReplayResponse, error) {
	return wire.Call[ReplayRequest, ReplayResponse](ctx, c, SubjectDeadLettersReplay, req, opts...)
}
