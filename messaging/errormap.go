package messaging

import (
	"context"
	"errors"

	"github.com/devloop/switchboard/wire"
)

// ErrorRule maps a domain error onto the wire: an error that matches Err
// (errors.Is) is answered with Code and the error's own text as message,
// and, when Field is set, a detail naming that field with Hint. An error
// with a WireDetails() []wire.Detail method gives its own details instead.
type ErrorRule struct {
	Err   error
	Code  int
	Field string
	Hint  string
}

// MapErrors is the endpoint layer's translation of domain errors into wire
// errors, declared in one place per service (its endpoints.go). The first
// rule that matches decides, so the result never depends on chance. Errors
// that match no rule go on as they are (a *wire.Error stays itself, an
// unknown error becomes a 500 whose text is not sent).
func MapErrors(rules ...ErrorRule) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) (*wire.Reply, error) {
			resp, err := next.Serve(ctx, req)
			if err == nil {
				return resp, nil
			}
			var we *wire.Error
			if errors.As(err, &we) {
				return nil, err
			}
			for _, r := range rules {
				if errors.Is(err, r.Err) {
					e := wire.NewError(r.Code, err.Error())
					var dd interface{ WireDetails() []wire.Detail }
					switch {
					case errors.As(err, &dd):
						e.Details = dd.WireDetails()
					case r.Field != "" || r.Hint != "":
						e.Details = []wire.Detail{{Field: r.Field, Message: r.Hint}}
					}
					return nil, e.WithCause(err)
				}
			}
			return nil, err
		})
	}
}
