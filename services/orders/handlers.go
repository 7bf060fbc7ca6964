package orders

import (
	"context"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
)

func handleCreate(s *store, users Users) func(context.Context, contract.CreateRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.CreateRequest) (contract.Order, error) {
		key, err := messaging.IdempotencyKey(ctx)
		if err != nil {
			return contract.Order{}, err
		}
		if err := users.Exists(ctx, req.UserID); err != nil {
			return contract.Order{}, err
		}
		return s.place(ctx, req, key)
	}
}

func handleGet(s *store) func(context.Context, contract.GetRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.GetRequest) (contract.Order, error) {
		return s.get(ctx, req.ID)
	}
}

func handleList(s *store) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(ctx context.Context, req contract.ListRequest) (contract.ListResponse, error) {
		limit := req.Limit
		if limit == 0 {
			limit = contract.DefaultLimit
		}
		orders, next, err := s.list(ctx, req.UserID, req.After, limit)
		if err != nil {
			return contract.ListResponse{}, err
		}
		return contract.ListResponse{Orders: orders, Next: next}, nil
	}
}

func handleCancel(s *store) func(context.Context, contract.CancelRequest) (contract.Order, error) {
	return func(ctx context.Context, req contract.CancelRequest) (contract.Order, error) {
		return s.cancel(ctx, req.ID, req.Version, req.Reason)
	}
}
