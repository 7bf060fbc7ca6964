package users

import (
	"context"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
)

func handleCreate(store Store) func(context.Context, contract.CreateRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.CreateRequest) (contract.User, error) {
		key, err := messaging.IdempotencyKey(ctx)
		if err != nil {
			return contract.User{}, err
		}
		return store.Create(ctx, NewUser{Name: req.Name, Email: req.Email, Age: *req.Age}, key)
	}
}

func handleGet(store Store) func(context.Context, contract.GetRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.GetRequest) (contract.User, error) {
		return store.Get(ctx, req.ID)
	}
}

func handleUpdate(store Store) func(context.Context, contract.UpdateRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.UpdateRequest) (contract.User, error) {
		return store.Update(ctx, req.ID, req.Version, Changes{Name: req.Name, Email: req.Email, Age: req.Age})
	}
}

func handleDelete(store Store) func(context.Context, contract.DeleteRequest) (contract.DeleteResponse, error) {
	return func(ctx context.Context, req contract.DeleteRequest) (contract.DeleteResponse, error) {
		if _, err := store.Delete(ctx, req.ID, req.Version); err != nil {
			return contract.DeleteResponse{}, err
		}
		return contract.DeleteResponse{ID: req.ID, Deleted: true}, nil
	}
}

func handleList(store Store) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(ctx context.Context, req contract.ListRequest) (contract.ListResponse, error) {
		limit := req.Limit
		if limit == 0 {
			limit = contract.DefaultLimit
		}
		users, next, err := store.List(ctx, req.After, limit)
		if err != nil {
			return contract.ListResponse{}, err
		}
		return contract.ListResponse{Users: users, Next: next}, nil
	}
}
