// Package gatewaytest holds the checks that tests of the gateway share:
// error responses as problem details, and the OpenAPI document, with a
// maintained validator (pb33f/libopenapi-validator), against the OpenAPI
// 3.1 schema, and real requests and responses against the document. It is
// kept out of the gateway itself, so the binary does not carry the
// validator.
package gatewaytest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/wire"
)

// Document is an OpenAPI document that validated against the OpenAPI 3.1
// schema.
type Document struct {
	v validator.Validator
}

// Validate parses doc and checks it against the OpenAPI 3.1 schema,
// failing the test with every violation found.
func Validate(t testing.TB, doc []byte) *Document {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatalf("parse OpenAPI document: %v", err)
	}
	if v := d.GetVersion(); v != "3.1.0" {
		t.Fatalf("OpenAPI document version %q, want 3.1.0", v)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("OpenAPI document does not build: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("OpenAPI document is not valid OpenAPI 3.1:%s\n%s", describe(verrs), doc)
	}
	return &Document{v: v}
}

// CheckExchange checks that resp is what the document says req gets, and,
// when resp is not an error, that req (made with body as its body) is a
// request the document allows. It reads and restores resp.Body.
func (d *Document) CheckExchange(t testing.TB, req *http.Request, body []byte, resp *http.Response) {
	t.Helper()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(respBody))
	validate := d.v.ValidateHttpRequestResponse
	if resp.StatusCode >= 400 {
		// An error answers a request the document may well forbid.
		validate = d.v.ValidateHttpResponse
	}
	if ok, errs := validate(r, &check); !ok {
		t.Errorf("%s %s -> %d does not match the OpenAPI document:%s\nresponse: %s", req.Method, req.URL, resp.StatusCode, describe(errs), respBody)
	}
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Error())
		for _, se := range e.SchemaValidationErrors {
			b.WriteString("\n    " + se.KeywordLocation + " at " + se.FieldPath + ": " + se.Reason)
		}
	}
	return b.String()
}

// CheckProblem checks an error response of the gateway: its status, the
// problem+json media type, and a body that is exactly a gateway.Problem
// with the members RFC 9457 asks for. It returns the problem.
func CheckProblem(t testing.TB, resp *http.Response, body []byte, wantStatus int) gateway.Problem {
	t.Helper()
	what := resp.Request.Method + " " + resp.Request.URL.String()
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != gateway.ProblemContentType {
		t.Fatalf("%s: Content-Type %q, want %s", what, ct, gateway.ProblemContentType)
	}
	var p gateway.Problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: problem body %s: %v", what, body, err)
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(wantStatus) || p.Status != wantStatus || p.Detail == "" || p.Code == 0 {
		t.Errorf("%s: problem %+v: want type about:blank, title %q, status %d, a code and a detail", what, p, http.StatusText(wantStatus), wantStatus)
	}
	if id := resp.Header.Get(wire.HeaderRequestID); id != "" && p.RequestID != id {
		t.Errorf("%s: problem request_id %q, header %q", what, p.RequestID, id)
	}
	if (wantStatus == http.StatusTooManyRequests || wantStatus == http.StatusServiceUnavailable) && resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d without Retry-After", what, wantStatus)
	}
	return p
}
