package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Status codes carried in the Nats-Service-Error-Code header. They follow the
// HTTP status codes of the same meaning so they read naturally in the nats
// CLI and map one-to-one onto an HTTP gateway.
const (
	CodeBadRequest       = 400
	CodeNotFound         = 404
	CodeConflict         = 409
	CodeTooLarge         = 413
	CodeTooManyRequests  = 429
	CodeInternal         = 500
	CodeUnavailable      = 503
	CodeDeadlineExceeded = 504
)

// Sentinel errors, one per status code. A *Error matches the sentinel of its
// code, so callers write errors.Is(err, messaging.ErrNotFound) whether the
// error was made locally or came back from a remote service. Handlers may
// also return a sentinel wrapped with context, for example
// fmt.Errorf("user %q: %w", id, messaging.ErrNotFound); the wrapped message
// is sent to the caller.
var (
	ErrBadRequest       = errors.New("bad request")
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("conflict")
	ErrTooLarge         = errors.New("payload too large")
	ErrTooManyRequests  = errors.New("too many requests")
	ErrInternal         = errors.New("internal error")
	ErrUnavailable      = errors.New("service unavailable")
	ErrDeadlineExceeded = errors.New("deadline exceeded")

	// ErrInvalidOption is wrapped by constructors given a bad option.
	ErrInvalidOption = errors.New("invalid option")
)

var sentinels = map[int]error{
	CodeBadRequest:       ErrBadRequest,
	CodeNotFound:         ErrNotFound,
	CodeConflict:         ErrConflict,
	CodeTooLarge:         ErrTooLarge,
	CodeTooManyRequests:  ErrTooManyRequests,
	CodeInternal:         ErrInternal,
	CodeUnavailable:      ErrUnavailable,
	CodeDeadlineExceeded: ErrDeadlineExceeded,
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

// Error implements error.
func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return fmt.Sprintf("%d %s", e.Code, e.Message)
	}
	msg := fmt.Sprintf("%d %s:", e.Code, e.Message)
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
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// Unwrap returns the local cause, if any, so that errors.Is(err,
// context.DeadlineExceeded) holds for a client-side timeout.
func (e *Error) Unwrap() error { return e.cause }

// CodeOf returns the status code a handler error is answered with.
func CodeOf(err error) int {
	return toError(err).Code
}

// toError maps any handler error onto the error model. Errors that do not
// carry a code are internal: their text is not sent to the caller, because it
// may hold details the caller has no business seeing.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeDeadlineExceeded, Message: "deadline exceeded", cause: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeUnavailable, Message: "request cancelled", cause: err}
	}
	for code, s := range sentinels {
		if errors.Is(err, s) {
			return &Error{Code: code, Message: err.Error(), cause: err}
		}
	}
	return &Error{Code: CodeInternal, Message: "internal error", cause: err}
}

// errorFromReply rebuilds an *Error from an error reply: the code header,
// then the JSON body when it is ours, else the description header.
func errorFromReply(codeHeader, description string, body []byte) *Error {
	code, err := strconv.Atoi(codeHeader)
	if err != nil {
		code = CodeInternal
	}
	e := &Error{Code: code, Message: description}
	if code == CodeDeadlineExceeded {
		// Whether the service or the client's own timer noticed first,
		// the caller sees the same: errors.Is(err, context.DeadlineExceeded).
		e.cause = context.DeadlineExceeded
	}
	var wire Error
	if json.Unmarshal(body, &wire) == nil && wire.Message != "" {
		e.Message = wire.Message
		e.Details = wire.Details
	}
	if e.Message == "" {
		e.Message = "error " + codeHeader
	}
	return e
}
