package contract

import (
	"context"

	"github.com/devloop/switchboard/wire"
)

// The typed client of the orders service: one function per endpoint, over
// any wire.Caller (a *messaging.Client, say).

// CreateOrder calls orders.create. Pass wire.WithIdempotencyKey to make a
// retry return the first attempt's order.
func CreateOrder(ctx context.Context, c wire.Caller, req CreateRequest, opts ...wire.CallOption) (Order, error) {
	return wire.Call[CreateRequest, Order](ctx, c, SubjectCreate, req, opts...)
}

// GetOrder calls orders.get.
func GetOrder(ctx context.Context, c wire.Caller, req GetRequest, opts ...wire.CallOption) (Order, error) {
	return wire.Call[GetRequest, Order](ctx, c, SubjectGet, req, opts...)
}

// ListOrders calls orders.list.
func ListOrders(ctx context.Context, c wire.Caller, req ListRequest, opts ...wire.CallOption) (ListResponse, error) {
	return wire.Call[ListRequest, ListResponse](ctx, c, SubjectList, req, opts...)
}

// CancelOrder calls orders.cancel.
func CancelOrder(ctx context.Context, c wire.Caller, req CancelRequest, opts ...wire.CallOption) (Order, error) {
	return wire.Call[CancelRequest, Order](ctx, c, SubjectCancel, req, opts...)
}
