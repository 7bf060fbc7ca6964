package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/devloop/switchboard/messaging"
)

func TestParseHTTPRoute(t *testing.T) {
	tests := []struct {
		name       string
		given      string
		wantParams []string
		wantErr    string // in the error; "" for none
	}{
		{name: "a literal path", given: "POST /v1/users"},
		{name: "a parameter", given: "GET /v1/users/{id}", wantParams: []string{"id"}},
		{name: "two parameters", given: "DELETE /v1/users/{user_id}/orders/{id}", wantParams: []string{"user_id", "id"}},
		{name: "the root", given: "GET /"},
		{name: "unreserved characters", given: "PUT /v1/a-b.c_d~e"},
		{name: "no space", given: "GET/v1/users", wantErr: `want "METHOD /path"`},
		{name: "an unknown method", given: "FETCH /v1/users", wantErr: "method must be one of GET, POST, PUT, PATCH, DELETE"},
		{name: "a lower-case method", given: "get /v1/users", wantErr: "method must be one of"},
		{name: "a relative path", given: "GET v1/users", wantErr: "path must start with /"},
		{name: "a trailing slash", given: "GET /v1/users/", wantErr: "empty path segment"},
		{name: "a double slash", given: "GET /v1//users", wantErr: "empty path segment"},
		{name: "a query", given: "GET /v1/orders?user_id=", wantErr: `character '?' not allowed`},
		{name: "a bad parameter name", given: "GET /v1/users/{user-id}", wantErr: "parameter {user-id}"},
		{name: "a parameter starting with a digit", given: "GET /v1/users/{1d}", wantErr: "parameter {1d}"},
		{name: "a repeated parameter", given: "GET /v1/{id}/{id}", wantErr: "{id} appears twice"},
		{name: "half a parameter", given: "GET /v1/{id", wantErr: `character '{' not allowed`},
		{name: "two spaces", given: "GET  /v1/users", wantErr: "path must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := messaging.ParseHTTPRoute(tt.given)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHTTPRoute(%q) = %v, want an error with %q", tt.given, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHTTPRoute(%q): %v", tt.given, err)
			}
			if r.String() != tt.given || !slices.Equal(r.Params, tt.wantParams) {
				t.Errorf("ParseHTTPRoute(%q) = %q with params %q, want params %q", tt.given, r, r.Params, tt.wantParams)
			}
		})
	}
}

// The route travels in the endpoint metadata, where $SRV.INFO (and so the
// gateway and `nats micro info`) finds it; a bad one stops the service from
// starting.
func TestWithHTTP(t *testing.T) {
	nc := connect(t, startServer(t))
	echo := func(_ context.Context, req struct{ ID string }) (struct{ ID string }, error) { return req, nil }
	svc := newService(t, nc, messaging.ServiceConfig{Name: "things"},
		messaging.Typed("get", echo, messaging.WithHTTP("GET /v1/things/{id}")),
		messaging.Typed("hidden", echo, messaging.WithHTTP(messaging.HTTPHidden)),
		messaging.Typed("plain", echo))
	got := map[string]string{}
	for _, ep := range svc.Info().Endpoints {
		got[ep.Name] = ep.Metadata[messaging.MetadataHTTP]
	}
	want := map[string]string{"get": "GET /v1/things/{id}", "hidden": "-", "plain": ""}
	for name, route := range want {
		if got[name] != route {
			t.Errorf("endpoint %s: metadata %s = %q, want %q", name, messaging.MetadataHTTP, got[name], route)
		}
	}

	_, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "bad", Version: "1.0.0"},
		messaging.Typed("get", echo, messaging.WithHTTP("GET /v1/things/{id")))
	if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "endpoint get: ") {
		t.Errorf("NewService with a bad route: %v, want an ErrInvalidOption naming the endpoint", err)
	}
}

// A route names its path parameters; they are request fields.
func ExampleParseHTTPRoute() {
	r, err := messaging.ParseHTTPRoute("GET /v1/users/{id}")
	fmt.Println(r.Method, r.Path, r.Params, err)
	// Output: GET /v1/users/{id} [id] <nil>
}
