// Command benchecho is the baseline of the benchmarks that run services in
// processes of their own: a plain nats.go micro endpoint, in a process of
// its own, that answers each request with its own payload (the raw echo
// the goals compare with). It is not part of the product; the
// benchmarks build it with go build. It prints "ready" once the endpoint
// is registered and serves until interrupted:
//
//	benchecho -nats-url nats://127.0.0.1:4222 -subject bench.echo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchecho: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	url := fs.String("nats-url", nats.DefaultURL, "NATS server URL")
	subject := fs.String("subject", "bench.echo", "subject to serve")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.Name("benchecho"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "benchecho",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: *subject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		},
	})
	if err != nil {
		return fmt.Errorf("echo service: %w", err)
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	return errors.Join(svc.Stop(), nc.Drain())
}
