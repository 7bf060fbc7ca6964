package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/devloop/switchboard/wire"
)

// ErrInvalidOption is wrapped by constructors given a bad option.
var ErrInvalidOption = errors.New("invalid option")

// errorFromReply rebuilds a *wire.Error from an error reply: the code
// header, then the JSON body when it is ours, else the description header.
func errorFromReply(codeHeader, description string, body []byte) *wire.Error {
	code, err := strconv.Atoi(codeHeader)
	if err != nil {
		code = wire.CodeInternal
	}
	e := &wire.Error{Code: code, Message: description}
	var w wire.Error
	if json.Unmarshal(body, &w) == nil && w.Message != "" {
		e.Message = w.Message
		e.Details = w.Details
	}
	if e.Message == "" {
		e.Message = "error " + codeHeader
	}
	if code == wire.CodeDeadlineExceeded {
		// Whether the service or the client's own timer noticed first,
		// the caller sees the same: errors.Is(err, context.DeadlineExceeded).
		e = e.WithCause(context.DeadlineExceeded)
	}
	return e
}
