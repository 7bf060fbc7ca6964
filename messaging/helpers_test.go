package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/messaging"
)

// startServer starts an embedded server with JetStream for one test.
func startServer(t testing.TB) *embedded.Server { return embeddedtest.Start(t, t.TempDir()) }

func connect(t testing.TB, srv *embedded.Server) *nats.Conn {
	return embeddedtest.Connect(t, srv, t.Name())
}

func newService(t testing.TB, nc *nats.Conn, cfg messaging.ServiceConfig, routes ...messaging.Endpoint) *messaging.Service {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Version == "" {
		cfg.Version = "1.0.0"
	}
	svc, err := messaging.NewService(nc, cfg, routes...)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	return svc
}

func newClient(t testing.TB, nc *nats.Conn, opts ...messaging.ClientOption) *messaging.Client {
	t.Helper()
	c, err := messaging.NewClient(nc, opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}
