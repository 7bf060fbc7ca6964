package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/devloop/switchboard/wire"
)

// ProblemContentType is the media type of every error response (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is the body of every error response: RFC 9457 problem details,
// with the wire error's code and field details as extension members.
type Problem struct {
	// Type is "about:blank": the status code says what happened.
	Type string `json:"type"`
	// Title is the HTTP status text, e.g. "Not Found".
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail is the service's (or the gateway's) message for humans.
	Detail string `json:"detail,omitempty"`
	// Code is the status code of the wire error (docs/errors.md); it
	// equals Status except for codes HTTP has no use for.
	Code int `json:"code"`
	// RequestID is the request's Switchboard-Request-Id, for support.
	RequestID string `json:"request_id,omitempty"`
	// Errors are per-field problems, as in a wire.Error's details.
	Errors []wire.Detail `json:"errors,omitempty"`
}

// httpStatus maps a wire status code onto an HTTP status. The wire codes
// follow HTTP's (docs/errors.md); a code outside 400–599 is the service's
// own business, so it reaches the caller as a 502.
func httpStatus(code int) int {
	if code >= 400 && code <= 599 && http.StatusText(code) != "" {
		return code
	}
	return http.StatusBadGateway
}

// retryAfterSeconds is the Retry-After of 503s: how soon a retry is worth
// it when a service is overloaded or missing.
const retryAfterSeconds = 1

// writeError answers with the problem made of e.
func writeError(w http.ResponseWriter, requestID string, e *wire.Error) {
	status := httpStatus(e.Code)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		}
	}
	writeProblem(w, Problem{Status: status, Detail: e.Message, Code: e.Code, RequestID: requestID, Errors: e.Details})
}

// writeProblem fills in p's type and title and writes it.
func writeProblem(w http.ResponseWriter, p Problem) {
	p.Type = "about:blank"
	p.Title = http.StatusText(p.Status)
	if p.Code == 0 {
		p.Code = p.Status
	}
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
