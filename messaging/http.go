package messaging

import (
	"fmt"
	"slices"
	"strings"
)

// MetadataHTTP is the endpoint metadata key that holds an endpoint's HTTP
// route, as [WithHTTP] sets it. The gateway (services/gateway) reads it
// from `$SRV.INFO`; `nats micro info` shows it.
const MetadataHTTP = "http"

// HTTPHidden, as a route, keeps an endpoint out of the HTTP gateway.
const HTTPHidden = "-"

// HTTPRoute is a parsed HTTP route: a method and a path template whose
// {name} segments are request fields.
type HTTPRoute struct {
	// Method is GET, POST, PUT, PATCH or DELETE.
	Method string
	// Path is the path template, e.g. "/v1/users/{id}".
	Path string
	// Segments are the path's segments; a parameter is "{name}".
	Segments []string
	// Params are the names of the path parameters, in order.
	Params []string
}

// String returns the route as WithHTTP takes it.
func (r HTTPRoute) String() string { return r.Method + " " + r.Path }

// WithHTTP declares the endpoint's HTTP route, for example
// "GET /v1/users/{id}": a method, one space and a path. A {name} segment
// and every query parameter set the request field of that JSON name; a
// JSON body, for methods that take one, sets the others. [HTTPHidden] keeps
// the endpoint off HTTP. Endpoints without a route are served as
// POST /v1/<service>/<endpoint>. The route is published in the endpoint's
// metadata under [MetadataHTTP].
func WithHTTP(route string) EndpointOption {
	return func(o *endpointOptions) error {
		if route != HTTPHidden {
			if _, err := ParseHTTPRoute(route); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidOption, err)
			}
		}
		return WithMetadata(map[string]string{MetadataHTTP: route})(o)
	}
}

var httpMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// ParseHTTPRoute parses a route as [WithHTTP] takes it. The path starts
// with "/", has no empty segment, no query and no fragment; a literal
// segment holds letters, digits and "-._~"; a parameter segment is {name},
// name being a JSON field name (letters, digits, "_", not starting with a
// digit) used once.
func ParseHTTPRoute(route string) (HTTPRoute, error) {
	bad := func(format string, args ...any) (HTTPRoute, error) {
		return HTTPRoute{}, fmt.Errorf("http route %q: %s", route, fmt.Sprintf(format, args...))
	}
	method, path, ok := strings.Cut(route, " ")
	if !ok {
		return bad(`want "METHOD /path", e.g. "GET /v1/users/{id}"`)
	}
	if !slices.Contains(httpMethods, method) {
		return bad("method must be one of %s", strings.Join(httpMethods, ", "))
	}
	if !strings.HasPrefix(path, "/") {
		return bad("path must start with /")
	}
	r := HTTPRoute{Method: method, Path: path}
	if path == "/" {
		return r, nil
	}
	for _, seg := range strings.Split(path[1:], "/") {
		switch {
		case seg == "":
			return bad("empty path segment (a double or trailing /)")
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			if !isFieldName(name) {
				return bad("parameter %s: want {name}, name a JSON field name of letters, digits and _", seg)
			}
			if slices.Contains(r.Params, name) {
				return bad("parameter {%s} appears twice", name)
			}
			r.Params = append(r.Params, name)
		default:
			if i := strings.IndexFunc(seg, func(c rune) bool { return !isUnreserved(c) }); i >= 0 {
				return bad("segment %q: character %q not allowed (letters, digits, -._~)", seg, seg[i])
			}
		}
		r.Segments = append(r.Segments, seg)
	}
	return r, nil
}

func isFieldName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isUnreserved(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)
}
