package users

import (
	"context"

	"github.com/devloop/switchboard/services/users/contract"
)

// Store is what the endpoints need from storage. The JetStream event store
// implements it; a cache can decorate it without the endpoints knowing.
type Store interface {
	// Create stores a new user. With a non-empty idempotency key, a
	// repeated create returns the user the first one made.
	Create(ctx context.Context, in NewUser, idempotencyKey string) (contract.User, error)
	// Get returns the current state of a user; a 404 *wire.Error
	// when the id is unknown or deleted.
	Get(ctx context.Context, id string) (contract.User, error)
	// Update applies ch to the user if its current version is version;
	// 409 when it is not, 404 when the user does not exist.
	Update(ctx context.Context, id string, version int64, ch Changes) (contract.User, error)
	// Delete deletes the user, at version when version > 0, and returns
	// the state it was deleted in (with the version of the delete).
	Delete(ctx context.Context, id string, version int64) (contract.User, error)
	// List returns up to limit users with ids after the given one, in
	// id order, and the cursor of the next page ("" on the last).
	List(ctx context.Context, after string, limit int) ([]contract.User, string, error)
}

// NewUser is a validated create request.
type NewUser struct {
	Name  string
	Email string
	Age   int
}

// Changes are the fields an update sets; nil fields keep their value.
type Changes struct {
	Name  *string
	Email *string
	Age   *int
}
