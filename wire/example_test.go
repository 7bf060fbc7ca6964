package wire_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/devloop/switchboard/wire"
)

// Errors cross the wire as *wire.Error and match the sentinels, wherever
// they were made.
func ExampleError() {
	err := fmt.Errorf("load order: %w", wire.NewError(wire.CodeNotFound, `order "o1" not found`))
	fmt.Println(errors.Is(err, wire.ErrNotFound), wire.CodeOf(err))
	// Output: true 404
}

// A handler error that wraps a sentinel is answered with the sentinel's
// code and the error's text; one that wraps none is a 500 whose text stays
// local.
func ExampleErrorOf() {
	fmt.Println(wire.ErrorOf(fmt.Errorf("user %q: %w", "u1", wire.ErrNotFound)))
	fmt.Println(wire.ErrorOf(errors.New("disk on fire")))
	// Output:
	// 404 user "u1": not found
	// 500 internal error
}

type greetRequest struct {
	Name string `json:"name"`
}

func (r greetRequest) Validate() error {
	var v wire.Violations
	if r.Name == "" {
		v.Add("name", "is required")
	}
	return v.Err()
}

// echoCaller answers every call with its own request, as a stand-in for
// messaging.Client in this example.
type echoCaller struct{}

func (echoCaller) Call(_ context.Context, _ string, data []byte, _ ...wire.CallOption) (*wire.Reply, error) {
	return &wire.Reply{Data: data}, nil
}

// Call is the typed client side: encode, send through any Caller, decode.
func ExampleCall() {
	resp, err := wire.Call[greetRequest, greetRequest](context.Background(), echoCaller{}, "greeter.echo", greetRequest{Name: "Ada"})
	fmt.Println(resp.Name, err)
	fmt.Println(greetRequest{}.Validate())
	// Output:
	// Ada <nil>
	// 400 invalid request: name: is required
}
