package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Users is what orders needs to know of users.
type Users interface {
	// Exists returns nil when the user exists, ErrNoSuchUser when it does
	// not, and ErrUsersUnavailable when users cannot say.
	Exists(ctx context.Context, id string) error
	// StillExists answers the same from the USERS stream's leader, which
	// has every acknowledged delete: the check after an order is stored.
	StillExists(ctx context.Context, id string) error
}

// DefaultUsersTimeout bounds a call to users when the request leaves more
// time than that: an order should fail fast when users is slow.
const DefaultUsersTimeout = 2 * time.Second

// usersClient asks the users service over NATS, with the caller's deadline
// (users.get sees it in Switchboard-Deadline), and reads the users' public
// event stream for the check after placing.
type usersClient struct {
	client  *messaging.Client
	js      jetstream.JetStream
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
	case errors.Is(err, wire.ErrNotFound), errors.Is(err, wire.ErrBadRequest):
		return fmt.Errorf("user %s: %w", id, ErrNoSuchUser)
	}
	var e *wire.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%w (%d %s); retry later", ErrUsersUnavailable, e.Code, e.Message)
	}
	return fmt.Errorf("%w; retry later", ErrUsersUnavailable)
}

func (u usersClient) StillExists(ctx context.Context, id string) error {
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
	defer cancel()
	m, err := messaging.LastMsg(callCtx, u.js, users.Stream, users.EventSubjectPrefix+id)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("user %s: %w", id, ErrNoSuchUser)
	case err != nil:
		// The first check passed and the stream cannot say otherwise:
		// keep the order (the cascade covers a delete it sees later).
		return nil
	case m.Header.Get(wire.HeaderEventType) == users.EventDeleted:
		return fmt.Errorf("user %s was deleted: %w", id, ErrNoSuchUser)
	}
	return nil
}
