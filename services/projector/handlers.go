package projector

import (
	"context"

	"github.com/devloop/switchboard/services/projector/contract"
)

func handleSearchUsers(q *queries) func(context.Context, contract.UsersSearchRequest) (contract.UsersSearchResponse, error) {
	return q.searchUsers
}

func handleSearchOrders(q *queries) func(context.Context, contract.OrdersSearchRequest) (contract.OrdersSearchResponse, error) {
	return q.searchOrders
}

func handleStatus(s *Service) func(context.Context, contract.StatusRequest) (contract.StatusResponse, error) {
	return func(ctx context.Context, _ contract.StatusRequest) (contract.StatusResponse, error) {
		return s.Status(ctx), nil
	}
}
