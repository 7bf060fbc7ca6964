package embedded

import "errors"

var (
	// ErrAddrInUse means the listen address is taken, usually by another
	// switchboard dev.
	ErrAddrInUse = errors.New("embedded nats: address already in use")

	// ErrStoreLocked means another server, in this or another process, holds
	// the store directory.
	ErrStoreLocked = errors.New("embedded nats: store directory locked")

	// ErrInvalidOption means a field of Options has an unusable value.
	ErrInvalidOption = errors.New("embedded nats: invalid option")
)

// startError carries a message written for people while still matching the
// sentinel and the underlying cause with errors.Is.
type startError struct {
	msg  string
	errs []error
}

func (e *startError) Error() string   { return e.msg }
func (e *startError) Unwrap() []error { return e.errs }
