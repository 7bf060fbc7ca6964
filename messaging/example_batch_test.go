package messaging_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
)

// A batch consumer: the handler gets messages in stream order, many at a
// time, and they are acked once it returns nil (write them and the last
// sequence in one database transaction, say).
func ExampleConsumeBatches() {
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
	js, _ := jetstream.New(nc)
	if _, err := messaging.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		fmt.Println(err)
		return
	}
	for i := range 5 {
		_, _ = js.Publish(ctx, "events.thing", fmt.Appendf(nil, `{"n":%d}`, i))
	}

	done := make(chan struct{})
	var last uint64
	c, err := messaging.ConsumeBatches(ctx, js, messaging.ConsumerConfig{Stream: "EVENTS", Durable: "projection", BatchSize: 10},
		func(ctx context.Context, batch []*messaging.Delivery) error {
			for _, d := range batch {
				if d.StreamSeq != last+1 {
					fmt.Println("out of order:", d.StreamSeq)
				}
				last = d.StreamSeq
			}
			if last == 5 {
				close(done)
			}
			return nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	stop, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = c.Stop(stop)
	fmt.Println("applied up to sequence", last)
	// Output: applied up to sequence 5
}
