package orders

import (
	"context"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
)

// handleCreate places an order for a user that exists. The user is checked
// again once the order is stored: a user deleted in between (whose
// cancelling of open orders may have run before this one was stored) gets
// the order cancelled, and the caller the same answer as if the user had
// been gone from the start.
func handleCreate(s *store, users Users) func(context.Context, contract.CreateRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.CreateRequest) (contract.Order, error) {
		key, fp, err := messaging.IdempotencyKey(ctx)
		if err != nil {
			return contract.Order{}, err
		}
		if err := users.Exists(ctx, req.UserID); err != nil {
			return contract.Order{}, err
		}
		var idem *eventstore.Idempotency
		if key != "" {
			idem = &eventstore.Idempotency{Key: key, Fingerprint: fp}
		}
		rec, err := s.place(ctx, req, idem)
		if err != nil {
			return contract.Order{}, err
		}
		if err := users.StillExists(ctx, req.UserID); err != nil {
			if _, cerr := s.cancel(context.WithoutCancel(ctx), rec.State.ID, 0, cancelUserDeleted); cerr != nil {
				messaging.LoggerFrom(ctx).Error("order placed for a user deleted meanwhile could not be cancelled; the cascade will not see it",
					"order_id", rec.State.ID, "error", cerr.Error())
			}
			return contract.Order{}, err
		}
		return rec.State, nil
	}
}

func handleGet(s *store) func(context.Context, contract.GetRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.GetRequest) (contract.Order, error) {
		rec, err := s.get(ctx, req.ID)
		return rec.State, err
	}
}

func handleList(s *store, maxReply int) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(ctx context.Context, req contract.ListRequest) (contract.ListResponse, error) {
		limit := req.PageSize()
		orders, next, err := s.list(ctx, req.UserID, req.After, limit, maxReply)
		if err != nil {
			return contract.ListResponse{}, err
		}
		return contract.ListResponse{Orders: orders, Next: next}, nil
	}
}

func handleCancel(s *store) func(context.Context, contract.CancelRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.CancelRequest) (contract.Order, error) {
		rec, err := s.cancel(ctx, req.ID, req.Version, req.Reason)
		if err != nil {
			return contract.Order{}, err
		}
		return rec.State, nil
	}
}
