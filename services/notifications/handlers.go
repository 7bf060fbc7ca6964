package notifications

import (
	"context"

	"github.com/devloop/switchboard/services/notifications/contract"
)

func handleList(h *hooks) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
		return contract.ListResponse{Webhooks: h.list()}, nil
	}
}

func handlePut(h *hooks) func(context.Context, contract.Webhook) (contract.View, error) {
	return h.put
}

func handleDelete(h *hooks) func(context.Context, contract.DeleteRequest) (contract.DeleteResponse, error) {
	return func(ctx context.Context, req contract.DeleteRequest) (contract.DeleteResponse, error) {
		if err := h.remove(ctx, req.ID); err != nil {
			return contract.DeleteResponse{}, err
		}
		return contract.DeleteResponse{ID: req.ID, Deleted: true}, nil
	}
}

func handleDeadLetters(dl deadLetters) func(context.Context, contract.DeadLettersRequest) (contract.DeadLettersResponse, error) {
	return func(ctx context.Context, req contract.DeadLettersRequest) (contract.DeadLettersResponse, error) {
		limit := req.PageSize()
		page, next, err := dl.list(ctx, req.WebhookID, req.After, limit)
		if err != nil {
			return contract.DeadLettersResponse{}, err
		}
		return contract.DeadLettersResponse{DeadLetters: page, Next: next}, nil
	}
}

func handleReplay(dl deadLetters) func(context.Context, contract.ReplayRequest) (contract.ReplayResponse, error) {
	return func(ctx context.Context, req contract.ReplayRequest) (contract.ReplayResponse, error) {
		if req.All {
			n, err := dl.replayAll(ctx, req.WebhookID)
			return contract.ReplayResponse{Replayed: n}, err
		}
		if err := dl.replay(ctx, req.ID); err != nil {
			return contract.ReplayResponse{}, err
		}
		return contract.ReplayResponse{Replayed: 1}, nil
	}
}
