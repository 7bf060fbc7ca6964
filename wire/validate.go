package wire

import "fmt"

// Validator is implemented by request types that check themselves. A typed
// endpoint calls Validate after decoding; a non-nil error is answered 400.
// Return [Violations.Err] to report per-field details.
type Validator interface {
	Validate() error
}

// Violations collects per-field problems found while validating a request.
type Violations []Detail

// Add records that field is invalid, with a message saying what is allowed.
func (v *Violations) Add(field, format string, args ...any) {
	*v = append(*v, Detail{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when nothing was added, else a 400 *Error carrying the
// details.
func (v Violations) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: CodeBadRequest, Message: "invalid request", Details: v}
}
