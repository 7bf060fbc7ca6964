package contract

import (
	"context"

	"github.com/devloop/switchboard/wire"
)

// The typed client of the projector: one function per endpoint, over any
// wire.Caller (a *messaging.Client, say).

// SearchUsers calls users.search.
func SearchUsers(ctx context.Context, c wire.Caller, req UsersSearchRequest, opts ...wire.CallOption) (UsersSearchResponse, error) {
	return wire.Call[UsersSearchRequest, UsersSearchResponse](ctx, c, SubjectUsersSearch, req, opts...)
}

// SearchOrders calls orders.search.
func SearchOrders(ctx context.Context, c wire.Caller, req OrdersSearchRequest, opts ...wire.CallOption) (OrdersSearchResponse, error) {
	return wire.Call[OrdersSearchRequest, OrdersSearchResponse](ctx, c, SubjectOrdersSearch, req, opts...)
}

// Status calls projector.status.
func Status(ctx context.Context, c wire.Caller, opts ...wire.CallOption) (StatusResponse, error) {
	return wire.Call[StatusRequest, StatusResponse](ctx, c, SubjectStatus, StatusRequest{}, opts...)
}
