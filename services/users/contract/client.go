package contract

import (
	"context"

	"github.com/devloop/switchboard/wire"
)

// The typed client of the users service: one function per endpoint, over
// any wire.Caller (a *messaging.Client, say). Errors are *wire.Error values
// matching the wire sentinels (wire.ErrNotFound, wire.ErrConflict, …).

// CreateUser calls users.create. Pass wire.WithIdempotencyKey to make a
// retry return the first attempt's user.
func CreateUser(ctx context.Context, c wire.Caller, req CreateRequest, opts ...wire.CallOption) (User, error) {
	return wire.Call[CreateRequest, User](ctx, c, SubjectCreate, req, opts...)
}

// GetUser calls users.get.
func GetUser(ctx context.Context, c wire.Caller, req GetRequest, opts ...wire.CallOption) (User, error) {
	return wire.Call[GetRequest, User](ctx, c, SubjectGet, req, opts...)
}

// UpdateUser calls users.update.
func UpdateUser(ctx context.Context, c wire.Caller, req UpdateRequest, opts ...wire.CallOption) (User, error) {
	return wire.Call[UpdateRequest, User](ctx, c, SubjectUpdate, req, opts...)
}

// DeleteUser calls users.delete.
func DeleteUser(ctx context.Context, c wire.Caller, req DeleteRequest, opts ...wire.CallOption) (DeleteResponse, error) {
	return wire.Call[DeleteRequest, DeleteResponse](ctx, c, SubjectDelete, req, opts...)
}

// ListUsers calls users.list.
func ListUsers(ctx context.Context, c wire.Caller, req ListRequest, opts ...wire.CallOption) (ListResponse, error) {
	return wire.Call[ListRequest, ListResponse](ctx, c, SubjectList, req, opts...)
}
