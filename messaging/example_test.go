package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

type echoReq struct {
	Text string `json:"text"`
}

func (r echoReq) Validate() error {
	var v wire.Violations
	if r.Text == "" {
		v.Add("text", "is required")
	}
	return v.Err()
}

type echoResp struct {
	Echo string `json:"echo"`
}

// A typed endpoint on a micro service, called with the typed client.
func ExampleTyped() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect("example")
	defer nc.Close()

	svc, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "echo", Version: "1.0.0"},
		messaging.Typed("say", func(ctx context.Context, req echoReq) (echoResp, error) {
			return echoResp{Echo: req.Text}, nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop(ctx)

	client, _ := messaging.NewClient(nc, messaging.WithTimeout(2*time.Second))
	resp, err := wire.Call[echoReq, echoResp](ctx, client, "echo.say", echoReq{Text: "hi"})
	fmt.Println(resp.Echo, err)

	_, err = wire.Call[echoReq, echoResp](ctx, client, "echo.say", echoReq{})
	var e *wire.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Message, e.Details[0].Field, e.Details[0].Message)
	}
	fmt.Println(errors.Is(err, wire.ErrBadRequest))
	// Output:
	// hi <nil>
	// 400 invalid request text is required
	// true
}
