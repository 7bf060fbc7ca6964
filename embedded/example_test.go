package embedded_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
)

func ExampleStart() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "switchboard-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Println(err)
		}
	}()

	// Services in this process connect in-process; srv.ClientURL() is for
	// everything else.
	nc, err := srv.Connect("example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ack, err := js.Publish(ctx, "orders.created", []byte(`{"id":1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s #%d %s: %s\n", ack.Stream, ack.Sequence, msg.Subject, msg.Data)
	// Output:
	// ORDERS #1 orders.created: {"id":1}
}
