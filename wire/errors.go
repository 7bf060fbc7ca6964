package wire

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Status codes carried in the Nats-Service-Error-Code header. They follow the
// HTTP status codes of the same meaning, so they read naturally in the nats
// CLI and map one-to-one onto HTTP.
const (
	CodeBadRequest       = 400
	CodeNotFound         = 404
	CodeConflict         = 409
	CodeTooLarge         = 413
	CodeUnprocessable    = 422
	CodeTooManyRequests  = 429
	CodeInternal         = 500
	CodeUnavailable      = 503
	CodeDeadlineExceeded = 504
)

// Sentinel errors, one per status code. A *Error matches the sentinel of its
// code, so callers write errors.Is(err, wire.ErrNotFound) whether the error
// was made locally or came back from a remote service. Handlers may also
// return a sentinel wrapped with context, for example
// fmt.Errorf("order %q: %w", id, wire.ErrNotFound); the wrapped message is
// sent to the caller.
var (
	ErrBadRequest       = errors.New("bad request")
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("conflict")
	ErrTooLarge         = errors.New("payload too large")
	ErrUnprocessable    = errors.New("unprocessable request")
	ErrTooManyRequests  = errors.New("too many requests")
	ErrInternal         = errors.New("internal error")
	ErrUnavailable      = errors.New("service unavailable")
	ErrDeadlineExceeded = errors.New("deadline exceeded")
)

// sentinel returns the sentinel error of code, or nil.
func sentinel(code int) error {
	switch code {
	case CodeBadRequest:
		return ErrBadRequest
	case CodeNotFound:
		return ErrNotFound
	case CodeConflict:
		return ErrConflict
	case CodeTooLarge:
		return ErrTooLarge
	case CodeUnprocessable:
		return ErrUnprocessable
	case CodeTooManyRequests:
		return ErrTooManyRequests
	case CodeInternal:
		return ErrInternal
	case CodeUnavailable:
		return ErrUnavailable
	case CodeDeadlineExceeded:
		return ErrDeadlineExceeded
	}
	return nil
}

// codeOfSentinel is the inverse of sentinel.
func codeOfSentinel(err error) (int, bool) {
	for _, code := range []int{CodeBadRequest, CodeNotFound, CodeConflict, CodeTooLarge, CodeUnprocessable,
		CodeTooManyRequests, CodeInternal, CodeUnavailable, CodeDeadlineExceeded} {
		if sentinel(code) == err {
			return code, true
		}
	}
	return 0, false
}

// Detail describes one problem with one field of a request.
type Detail struct {
	// Field is the JSON path of the offending field, e.g. "email" or
	// "items[2].quantity"; empty when the problem is not tied to a field.
	Field string `json:"field,omitempty"`
	// Message says what is wrong and what is allowed.
	Message string `json:"message"`
}

// Error is the error model shared by every service: a status code, a message
// for humans and optional per-field details. It is the JSON body of every
// error reply.
type Error struct {
	Code    int      `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`

	cause error // local cause, never sent over the wire
}

// NewError returns an *Error with the given code, message and details.
func NewError(code int, message string, details ...Detail) *Error {
	return &Error{Code: code, Message: message, Details: details}
}

// Errorf returns an *Error with the given code and a formatted message. A %w
// verb keeps the wrapped error as the local cause (for errors.Is), but only
// the formatted text travels.
func Errorf(code int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), cause: errors.Unwrap(err)}
}

// WithCause returns a copy of e whose local cause is cause: errors.Is and
// errors.As see it, the caller does not.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// Error implements error.
func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return strconv.Itoa(e.Code) + " " + e.Message
	}
	msg := strconv.Itoa(e.Code) + " " + e.Message + ":"
	for i, d := range e.Details {
		if i > 0 {
			msg += ";"
		}
		if d.Field != "" {
			msg += " " + d.Field + ":"
		}
		msg += " " + d.Message
	}
	return msg
}

// Is reports whether target is the sentinel error of e's code.
func (e *Error) Is(target error) bool {
	s := sentinel(e.Code)
	return s != nil && s == target
}

// Unwrap returns the local cause, if any, so that errors.Is(err,
// context.DeadlineExceeded) holds for a client-side timeout.
func (e *Error) Unwrap() error { return e.cause }

// CodeOf returns the status code a handler error is answered with, and 0
// for nil.
func CodeOf(err error) int {
	if err == nil {
		return 0
	}
	return ErrorOf(err).Code
}

// ErrorOf maps any error onto the error model. The outermost error in err's
// chain that carries a code decides: an *Error, a sentinel (its message is
// err's text), context.DeadlineExceeded (504) or context.Canceled (503).
// Errors that carry no code are internal: their text is not sent to the
// caller, because it may hold details the caller has no business seeing.
// The walk is depth-first in wrapping order, so the result never depends on
// chance.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	if e := find(err, err); e != nil {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", cause: err}
}

// find walks the tree of err and returns the *Error of its first node that
// carries a code; top is the whole error, whose text a sentinel's reply
// carries.
func find(top, err error) *Error {
	for err != nil {
		if e, ok := err.(*Error); ok {
			return e
		}
		switch err {
		case context.DeadlineExceeded:
			return &Error{Code: CodeDeadlineExceeded, Message: "deadline exceeded", cause: top}
		case context.Canceled:
			return &Error{Code: CodeUnavailable, Message: "request cancelled", cause: top}
		}
		if code, ok := codeOfSentinel(err); ok {
			return &Error{Code: code, Message: top.Error(), cause: top}
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if e := find(top, inner); e != nil {
					return e
				}
			}
			return nil
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
