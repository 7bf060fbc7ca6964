package messaging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/wire"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
)

// benchText makes the echo payload {"text":"…"} 64 bytes of JSON.
const benchText = "hello, switchboard! a small JSON echo payload of 64 b"

type benchEcho struct {
	Text string `json:"text"`
}

// BenchmarkEcho compares a typed echo endpoint (messaging.Endpoint called
// with messaging.Request) with the same echo written against nats.go micro
// directly, over in-process and TCP connections. The service and the client
// have connections of their own, as in production. See docs/performance.md.
func BenchmarkEcho(b *testing.B) {
	payload, err := json.Marshal(benchEcho{Text: benchText})
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		// serve starts the echo service on nc and returns its subject.
		serve func(b *testing.B, nc *nats.Conn) string
		// caller returns one echo request on nc.
		caller func(b *testing.B, nc *nats.Conn, subject string) func(context.Context) error
	}{
		{
			name: "raw-micro",
			serve: func(b *testing.B, nc *nats.Conn) string {
				benchRawEcho(b, nc, "raw.echo")
				return "raw.echo"
			},
			caller: func(_ *testing.B, nc *nats.Conn, subject string) func(context.Context) error {
				return func(context.Context) error {
					reply, err := nc.Request(subject, payload, 5*time.Second)
					if err != nil {
						return err
					}
					if !bytes.Equal(reply.Data, payload) {
						return fmt.Errorf("echo: got %q", reply.Data)
					}
					return nil
				}
			},
		},
		{
			name: "typed",
			serve: func(b *testing.B, nc *nats.Conn) string {
				newService(b, nc, messaging.ServiceConfig{Name: "typed"},
					messaging.Typed("echo", func(_ context.Context, req benchEcho) (benchEcho, error) {
						return req, nil
					}))
				return "typed.echo"
			},
			caller: func(b *testing.B, nc *nats.Conn, subject string) func(context.Context) error {
				client := newClient(b, nc)
				return func(ctx context.Context) error {
					resp, err := wire.Call[benchEcho, benchEcho](ctx, client, subject, benchEcho{Text: benchText})
					if err != nil {
						return err
					}
					if resp.Text != benchText {
						return fmt.Errorf("echo: got %q", resp.Text)
					}
					return nil
				}
			},
		},
	}
	transports := []struct {
		name string
		tcp  bool
	}{
		{name: "inproc"},
		{name: "tcp", tcp: true},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for _, tr := range transports {
				b.Run(tr.name, func(b *testing.B) {
					srv := startServer(b)
					subject := v.serve(b, benchConnect(b, srv, "bench-service", tr.tcp))
					call := v.caller(b, benchConnect(b, srv, "bench-client", tr.tcp), subject)
					if err := call(b.Context()); err != nil {
						b.Fatalf("first request: %v", err)
					}
					for _, c := range []int{1, 16, 128} {
						b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { benchload.Run(b, c, call, benchload.SelfCPU) })
					}
				})
			}
		})
	}
}

// benchRawEcho serves subject with a plain micro endpoint that answers each
// request with its own payload, on micro's single delivery goroutine.
func benchRawEcho(b *testing.B, nc *nats.Conn, subject string) {
	b.Helper()
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "rawecho",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		},
	})
	if err != nil {
		b.Fatalf("raw echo service: %v", err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
}

// benchConnect opens a connection to srv named name: over TCP to its client
// URL, or in-process.
func benchConnect(b *testing.B, srv *embedded.Server, name string, tcp bool) *nats.Conn {
	b.Helper()
	var nc *nats.Conn
	var err error
	if tcp {
		nc, err = nats.Connect(srv.ClientURL(), nats.Name(name))
	} else {
		nc, err = srv.Connect(name)
	}
	if err != nil {
		b.Fatalf("connect %s: %v", name, err)
	}
	b.Cleanup(nc.Close)
	return nc
}
