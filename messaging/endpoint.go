package messaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/invopop/jsonschema"

	"github.com/devloop/switchboard/wire"
)

// Defaults for endpoints; [ServiceConfig] and [EndpointOption]s change them.
const (
	// DefaultMaxPayload is the largest request an endpoint accepts (1 MiB).
	DefaultMaxPayload = 1 << 20
	// DefaultMaxConcurrency is how many requests one endpoint of one
	// service instance works on at once; more are answered 503.
	DefaultMaxConcurrency = 256
)

// Endpoint is one endpoint of a [Service]: a name, a handler and its
// options. Make one with [Typed] (typed JSON) or [Raw].
type Endpoint struct {
	name    string
	handler Handler
	opts    endpointOptions
	err     error
}

// Name returns the endpoint's name.
func (r Endpoint) Name() string { return r.name }

type endpointOptions struct {
	subject        string
	description    string
	maxPayload     int
	maxConcurrency int
	metadata       map[string]string
}

// EndpointOption tunes one endpoint.
type EndpointOption func(*endpointOptions) error

// WithSubject sets the endpoint's subject; the default is
// "<service>.<endpoint name>".
func WithSubject(subject string) EndpointOption {
	return func(o *endpointOptions) error {
		if subject == "" || strings.ContainsAny(subject, " \t\r\n") {
			return fmt.Errorf("%w: subject %q", ErrInvalidOption, subject)
		}
		o.subject = subject
		return nil
	}
}

// WithDescription documents the endpoint in `nats micro info`.
func WithDescription(text string) EndpointOption {
	return func(o *endpointOptions) error {
		o.description = text
		return nil
	}
}

// WithMaxPayload lowers the largest request the endpoint accepts; larger
// ones are answered 413. It must be between 1 and DefaultMaxPayload.
func WithMaxPayload(bytes int) EndpointOption {
	return func(o *endpointOptions) error {
		if bytes < 1 || bytes > DefaultMaxPayload {
			return fmt.Errorf("%w: max payload %d: want 1..%d", ErrInvalidOption, bytes, DefaultMaxPayload)
		}
		o.maxPayload = bytes
		return nil
	}
}

// WithMaxConcurrency sets how many requests the endpoint works on at once.
func WithMaxConcurrency(n int) EndpointOption {
	return func(o *endpointOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max concurrency %d: want at least 1", ErrInvalidOption, n)
		}
		o.maxConcurrency = n
		return nil
	}
}

// WithMetadata adds metadata shown by `nats micro info`.
func WithMetadata(md map[string]string) EndpointOption {
	return func(o *endpointOptions) error {
		if o.metadata == nil {
			o.metadata = map[string]string{}
		}
		for k, v := range md {
			o.metadata[k] = v
		}
		return nil
	}
}

// Raw makes an Endpoint from a Handler that works on raw bytes.
func Raw(name string, h Handler, opts ...EndpointOption) Endpoint {
	r := Endpoint{name: name, handler: h}
	for _, opt := range opts {
		if err := opt(&r.opts); err != nil {
			r.err = fmt.Errorf("endpoint %s: %w", name, err)
			return r
		}
	}
	return r
}

// Typed makes a typed JSON Endpoint. The request is decoded strictly
// (unknown fields and trailing data are 400s; an empty payload is the zero
// Req), validated when Req implements [wire.Validator], passed to fn, and fn's
// result is encoded as JSON. The JSON Schemas of Req and Resp are published
// in the endpoint's metadata ("request_schema", "response_schema"), so
// `nats micro info` documents the contract.
func Typed[Req, Resp any](name string, fn func(ctx context.Context, req Req) (Resp, error), opts ...EndpointOption) Endpoint {
	h := HandlerFunc(func(ctx context.Context, r *Request) (*wire.Reply, error) {
		var req Req
		if err := decodeStrict(r.Data, &req); err != nil {
			return nil, err
		}
		if err := validate(&req); err != nil {
			return nil, err
		}
		if got, _ := RequestFromContext(ctx); got != r {
			// Not below Logging, whose request scope answers for r.
			ctx = context.WithValue(ctx, requestKey{}, r)
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		data, err := jsonv1.Marshal(resp) // encoding/json's output, faster
		if err != nil {
			return nil, fmt.Errorf("encode %T response: %w", resp, err)
		}
		reply := r.newReply()
		reply.Header, reply.Data = r.replyHeader, data
		return reply, nil
	})
	schemas := map[string]string{
		"request_schema":  schemaOf[Req](),
		"response_schema": schemaOf[Resp](),
	}
	return Raw(name, h, append([]EndpointOption{WithMetadata(schemas)}, opts...)...)
}

func validate(req any) error {
	v, ok := req.(wire.Validator)
	if !ok {
		// A Validate method on the value receiver is in the pointer's
		// method set too, so one check covers both.
		return nil
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	var e *wire.Error
	if errors.As(err, &e) {
		return e
	}
	return wire.NewError(wire.CodeBadRequest, err.Error()).WithCause(err)
}

func schemaOf[T any]() string {
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, Anonymous: true}
	s := r.Reflect(new(T))
	s.Version = ""
	data, err := json.Marshal(s)
	if err != nil {
		return ""
	}
	return string(data)
}

// decodeStrict decodes data into v and turns every decoding problem into a
// 400 with a message a person can act on. It is strict as docs/errors.md
// says: unknown members, members named in another case, a member given
// twice, invalid UTF-8 and data after the request are all refused (the
// JSON v2 decoder, github.com/go-json-experiment/json, checks these in
// one pass; encoding/json accepts each of them).
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) *wire.Error {
	var syn *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	switch {
	case errors.As(err, &syn):
		field := fieldPath(syn.JSONPointer)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return wire.NewError(wire.CodeBadRequest, "invalid request", wire.Detail{Field: field, Message: "appears more than once"})
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return wire.NewError(wire.CodeBadRequest, "malformed JSON: unexpected end of input")
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("malformed JSON: unexpected data after the request object (offset %d)", syn.ByteOffset))
		}
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("malformed JSON at offset %d: %v", syn.ByteOffset, syn.Err))
	case errors.As(err, &sem):
		field := fieldPath(sem.JSONPointer)
		switch {
		case errors.Is(sem.Err, jsonv2.ErrUnknownName):
			return wire.NewError(wire.CodeBadRequest, "invalid request", wire.Detail{Field: field, Message: "unknown field"})
		case field == "" && sem.GoType != nil:
			return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("request must be %s, got %s", jsonKind(sem.GoType), kindName(sem.JSONKind)))
		case sem.GoType != nil:
			got := kindName(sem.JSONKind)
			if sem.JSONKind == '0' && len(sem.JSONValue) > 0 {
				got = "number " + string(sem.JSONValue)
			}
			return wire.NewError(wire.CodeBadRequest, "invalid request", wire.Detail{Field: field, Message: fmt.Sprintf("must be %s, got %s", jsonKind(sem.GoType), got)})
		}
		return wire.NewError(wire.CodeBadRequest, "invalid request", wire.Detail{Field: field, Message: strings.TrimPrefix(err.Error(), "json: ")})
	}
	return wire.NewError(wire.CodeBadRequest, "malformed JSON: "+err.Error())
}

// fieldPath turns a JSON Pointer (/items/0/quantity) into the field path
// of the error model (items[0].quantity).
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// kindName names a JSON kind as encoding/json's messages did.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "bool"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "something else"
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}
