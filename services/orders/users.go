package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/devloop/switchboard/messaging"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Users is what orders needs from the users service.
type Users interface {
	// Exists returns nil when the user exists, a 400 naming user_id
	// when it does not, and a 503 when users cannot say.
	Exists(ctx context.Context, id string) error
}

// DefaultUsersTimeout bounds a call to users when the request leaves more
// time than that: an order should fail fast when users is slow.
const DefaultUsersTimeout = 2 * time.Second

// usersClient asks the users service over NATS, with the caller's deadline
// (users.get sees it in Switchboard-Deadline).
type usersClient struct {
	client  *messaging.Client
	timeout time.Duration
}

func (u usersClient) Exists(ctx context.Context, id string) error {
	callCtx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	_, err := users.GetUser(callCtx, u.client, users.GetRequest{ID: id})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// The caller's own deadline ran out (504), not users' fault.
		return ctx.Err()
	case errors.Is(err, wire.ErrNotFound):
		return wire.NewError(wire.CodeBadRequest, "invalid request",
			wire.Detail{Field: "user_id", Message: "no such user"})
	case errors.Is(err, wire.ErrBadRequest):
		return wire.NewError(wire.CodeBadRequest, "invalid request",
			wire.Detail{Field: "user_id", Message: "not accepted by the users service"})
	}
	msg := "users service unavailable; retry later"
	var e *wire.Error
	if errors.As(err, &e) {
		msg = fmt.Sprintf("users service unavailable (%d %s); retry later", e.Code, e.Message)
	}
	return wire.NewError(wire.CodeUnavailable, msg)
}
