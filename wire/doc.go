// Package wire is Switchboard's wire model: what travels between a caller
// and a service, with nothing else attached. It holds the status codes and
// the [Error] model, per-field [Detail]s and the [Violations] collector that
// request types validate themselves with, the header names of the public
// contract, request ids, and the client side of a call ([Caller], [Call]).
//
// It imports only the standard library, so a service's contract package —
// subjects, payload types and a typed client per endpoint — can be imported
// by any caller without pulling in nats.go, JetStream or a schema reflector.
// messaging implements the transport on top of it: its Client is a
// [Caller], and its endpoints answer with *Error replies.
//
// docs/errors.md and docs/headers.md document the same contract for callers
// that are not written in Go.
package wire
