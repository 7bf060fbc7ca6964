package users

import (
	"context"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
)

func handleCreate(s *store) func(context.Context, contract.CreateRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.CreateRequest) (contract.User, error) {
		key, fp, err := messaging.IdempotencyKey(ctx)
		if err != nil {
			return contract.User{}, err
		}
		var idem *eventstore.Idempotency
		if key != "" {
			idem = &eventstore.Idempotency{Key: key, Fingerprint: fp}
		}
		return s.create(ctx, NewUser{Name: req.Name, Email: req.Email, Age: *req.Age}, idem)
	}
}

func handleGet(s *store) func(context.Context, contract.GetRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.GetRequest) (contract.User, error) {
		rec, err := s.get(ctx, req.ID)
		return rec.State, err
	}
}

func handleUpdate(s *store) func(context.Context, contract.UpdateRequest) (contract.User, error) {
	return func(ctx context.Context, req contract.UpdateRequest) (contract.User, error) {
		return s.update(ctx, req.ID, req.Version, Changes{Name: req.Name, Email: req.Email, Age: req.Age})
	}
}

func handleDelete(s *store) func(context.Context, contract.DeleteRequest) (contract.DeleteResponse, error) {
	return func(ctx context.Context, req contract.DeleteRequest) (contract.DeleteResponse, error) {
		if _, err := s.remove(ctx, req.ID, req.Version); err != nil {
			return contract.DeleteResponse{}, err
		}
		return contract.DeleteResponse{ID: req.ID, Deleted: true}, nil
	}
}

func handleList(s *store, maxReply int) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(ctx context.Context, req contract.ListRequest) (contract.ListResponse, error) {
		limit := req.PageSize()
		users, next, err := s.list(ctx, req.After, limit, maxReply)
		if err != nil {
			return contract.ListResponse{}, err
		}
		return contract.ListResponse{Users: users, Next: next}, nil
	}
}
