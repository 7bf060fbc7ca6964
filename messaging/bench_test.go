package messaging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/devloop/switchboard/internal/benchload"

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

// BenchmarkEcho compares a typed echo endpoint (messaging.Typed) with the
// honest baseline: a raw nats.go micro handler that does the same work by
// hand, decoding the request struct with encoding/json and encoding the
// response. Both are called the same way (a plain request with the JSON
// payload), so the difference is the typed layer: strict decoding,
// validation, bounded concurrency, deadlines, panic recovery, request
// logging and error mapping. Fixed counts, alternating rounds, ratios in
// one run: go test -run '^$' -bench Echo -benchtime 1x ./messaging/. See
// docs/performance.md.
func BenchmarkEcho(b *testing.B) {
	payload, err := json.Marshal(benchEcho{Text: benchText})
	if err != nil {
		b.Fatal(err)
	}
	for _, tr := range []struct {
		name string
		tcp  bool
	}{{name: "inproc"}, {name: "tcp", tcp: true}} {
		b.Run(tr.name, func(b *testing.B) {
			srv := startServer(b)
			svc := benchConnect(b, srv, "bench-service", tr.tcp)
			benchJSONEcho(b, svc, "raw.echo")
			newService(b, svc, messaging.ServiceConfig{Name: "typed"},
				messaging.Typed("echo", func(_ context.Context, req benchEcho) (benchEcho, error) {
					return req, nil
				}))
			nc := benchConnect(b, srv, "bench-client", tr.tcp)
			call := func(subject string) func(context.Context) error {
				return func(ctx context.Context) error {
					reply, err := nc.RequestWithContext(ctx, subject, payload)
					if err != nil {
						return err
					}
					var resp benchEcho
					if err := json.Unmarshal(reply.Data, &resp); err != nil || resp.Text != benchText {
						return fmt.Errorf("echo %s: got %q (%v)", subject, reply.Data, err)
					}
					return nil
				}
			}
			for _, c := range []int{1, 16, 128} {
				b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
					benchload.Compare(b, c, 9000,
						benchload.Side{Name: "raw", Call: call("raw.echo")},
						benchload.Side{Name: "typed", Call: call("typed.echo")},
						benchload.SelfCPU)
				})
			}
		})
	}
}

// benchJSONEcho serves subject with a plain micro endpoint that does by
// hand what a typed endpoint does for the echo: decode the request struct
// with encoding/json, encode the response, on micro's delivery goroutine.
func benchJSONEcho(b *testing.B, nc *nats.Conn, subject string) {
	b.Helper()
	svc, err := benchload.ServeJSONEcho[benchEcho](nc, "jsonecho", subject)
	if err != nil {
		b.Fatalf("raw echo service: %v", err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
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
