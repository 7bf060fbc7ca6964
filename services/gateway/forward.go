package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/devloop/switchboard/wire"
)

// HTTP headers of the gateway, beside the wire headers it passes on
// (Idempotency-Key, Switchboard-Deadline, Switchboard-Request-Id,
// Switchboard-Sequence). docs/gateway.md documents them.
const (
	// HeaderTimeout is the caller's budget as a duration ("1500ms",
	// "2s"), the relative form of wire.HeaderDeadline.
	HeaderTimeout = "Switchboard-Timeout"
	// HeaderXRequestID is accepted as the request id when
	// Switchboard-Request-Id is absent.
	HeaderXRequestID = "X-Request-Id"
	// HeaderAPIKey carries an API key, as does Authorization: Bearer.
	HeaderAPIKey = "X-API-Key"
)

// passed are the request headers forwarded to the service as they are
// (Idempotency-Key is forwarded too, scoped to the caller: passHeaders).
var passed = []string{wire.HeaderAfter, "traceparent", "tracestate"}

// maxPassedHeader bounds a forwarded header's length; a longer one is a
// 400, not a surprise in the service.
const maxPassedHeader = 1024

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID is the caller's request id when it is well formed (printable,
// short: it goes into logs), else a new one.
func requestID(r *http.Request) string {
	for _, h := range []string{wire.HeaderRequestID, HeaderXRequestID} {
		if v := r.Header.Get(h); requestIDPattern.MatchString(v) {
			return v
		}
	}
	return newID()
}

// deadline is when the request must be answered by: the earlier of the
// caller's Switchboard-Deadline and Switchboard-Timeout, else now+def;
// never later than now+max.
func deadline(r *http.Request, now time.Time, def, max time.Duration) (time.Time, *wire.Error) {
	d := now.Add(def)
	given := false
	if v := r.Header.Get(wire.HeaderDeadline); v != "" {
		t, err := wire.ParseDeadline(v)
		if err != nil {
			return time.Time{}, wire.ErrorOf(err)
		}
		d, given = t, true
	}
	if v := r.Header.Get(HeaderTimeout); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return time.Time{}, wire.NewError(wire.CodeBadRequest, fmt.Sprintf("%s header %q: want a positive duration such as 500ms or 2s", HeaderTimeout, v))
		}
		if !given || now.Add(t).Before(d) {
			d = now.Add(t)
		}
	}
	if limit := now.Add(max); d.After(limit) {
		d = limit
	}
	return d, nil
}

// readBody reads the request body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *wire.Error) {
	if r.Method == http.MethodGet || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	tooLarge := wire.NewError(wire.CodeTooLarge, fmt.Sprintf("request body is larger than this endpoint's limit of %d bytes", limit))
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, tooLarge
	case err != nil:
		return nil, wire.NewError(wire.CodeBadRequest, "reading the request body: "+err.Error())
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
				return nil, &wire.Error{Code: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("Content-Type %q: the body must be JSON (application/json)", ct)}
			}
		}
	}
	return body, nil
}

// payload makes the NATS request of an HTTP request: the JSON body with
// the path and query parameters set as fields, each converted to the
// field's type in the request schema. Without parameters the body goes as
// it is, so the service judges it (and words the errors) alone.
func payload(rt *route, params map[string]string, query url.Values, body []byte) ([]byte, *wire.Error) {
	fields := map[string][]string{}
	var names []string
	for name, v := range params {
		fields[name] = []string{v}
		names = append(names, name)
	}
	for name, vs := range query {
		vs = slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
		if len(vs) == 0 {
			continue // ?limit= means no limit given
		}
		if _, ok := params[name]; ok {
			return nil, wire.NewError(wire.CodeBadRequest, "invalid request",
				wire.Detail{Field: name, Message: "is set by the path; leave it out of the query"})
		}
		fields[name] = vs
		names = append(names, name)
	}
	if len(names) == 0 {
		return body, nil
	}
	slices.Sort(names)
	obj := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
			return nil, wire.NewError(wire.CodeBadRequest, "malformed JSON body: want a JSON object (the path or query sets fields of it)")
		}
	}
	for _, name := range names {
		v := convert(rt.fields[name], fields[name])
		if old, ok := obj[name]; ok && !jsonEqual(old, v) {
			return nil, wire.NewError(wire.CodeBadRequest, "invalid request",
				wire.Detail{Field: name, Message: fmt.Sprintf("is %s in the path or query but %s in the body", v, old)})
		}
		obj[name] = v
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, wire.NewError(wire.CodeBadRequest, "malformed JSON body: "+err.Error())
	}
	return data, nil
}

// convert turns parameter values into JSON of the field's type. A value
// that is not of the type goes as a string, so the service's own decoding
// says what is wrong with it ("must be an integer").
func convert(ft fieldType, vs []string) json.RawMessage {
	if ft.typ == "array" {
		out := make([]json.RawMessage, len(vs))
		for i, v := range vs {
			out[i] = scalar(ft.items, v)
		}
		data, _ := json.Marshal(out)
		return data
	}
	if len(vs) > 1 {
		data, _ := json.Marshal(vs)
		return data
	}
	return scalar(ft.typ, vs[0])
}

var integerPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func scalar(typ, v string) json.RawMessage {
	switch typ {
	case "integer":
		if integerPattern.MatchString(v) {
			return json.RawMessage(v)
		}
	case "number":
		if _, err := strconv.ParseFloat(v, 64); err == nil && json.Valid([]byte(v)) {
			return json.RawMessage(v)
		}
	case "boolean":
		if v == "true" || v == "false" {
			return json.RawMessage(v)
		}
	}
	data, _ := json.Marshal(v)
	return data
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// passHeaders returns the call options that forward the passed headers.
// The gateway calls every service as one NATS identity, so the
// Idempotency-Key is scoped to the authenticated caller: one caller can
// neither reuse nor read another's key.
func passHeaders(r *http.Request) ([]wire.CallOption, *wire.Error) {
	var opts []wire.CallOption
	if key := r.Header.Get(wire.HeaderIdempotencyKey); key != "" {
		caller, _ := r.Context().Value(keyCaller).(string)
		sum := sha256.Sum256([]byte(caller))
		scope := hex.EncodeToString(sum[:8]) + ":"
		if len(scope)+len(key) > wire.MaxIdempotencyKey {
			return nil, wire.NewError(wire.CodeBadRequest, "invalid request",
				wire.Detail{Field: wire.HeaderIdempotencyKey, Message: fmt.Sprintf("must be at most %d bytes", wire.MaxIdempotencyKey-len(scope))})
		}
		opts = append(opts, wire.WithIdempotencyKey(scope+key))
	}
	for _, h := range passed {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		if len(v) > maxPassedHeader {
			return nil, wire.NewError(wire.CodeBadRequest, "invalid request",
				wire.Detail{Field: h, Message: fmt.Sprintf("header must be at most %d bytes", maxPassedHeader)})
		}
		opts = append(opts, wire.WithHeader(h, v))
	}
	return opts, nil
}

// callError is the wire error of a failed call; a caller that went away
// is no service's fault.
func callError(ctx context.Context, err error) *wire.Error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return wire.NewError(wire.CodeUnavailable, "request cancelled by the client")
	}
	return wire.ErrorOf(err)
}
