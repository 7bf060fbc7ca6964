package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
)

// A service declares its route next to its subject; the gateway finds it
// through discovery and serves it over HTTP.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "gateway-example")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect("greeter")
	defer nc.Close()

	type hello struct {
		Name string `json:"name"`
	}
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "greeter", Version: "1.0.0"},
		messaging.Typed("hello", func(_ context.Context, r hello) (hello, error) {
			return hello{Name: "hello, " + r.Name}, nil
		}, messaging.WithHTTP("GET /v1/hello/{name}")))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop(ctx)

	gc, _ := srv.Connect("gateway")
	defer gc.Close()
	g, err := gateway.New(ctx, gc, gateway.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	hs := httptest.NewServer(g)
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/v1/hello/Ada")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 {"name":"hello, Ada"}
}
