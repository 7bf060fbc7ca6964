// Package embeddedtest starts embedded NATS servers for tests, like
// httptest starts HTTP servers: each test gets its own server on a free
// loopback port with its JetStream store in a directory it chooses
// (usually t.TempDir()), shut down when the test ends.
package embeddedtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/embedded"
)

// Start starts a server with JetStream on dir, shut down when the test
// ends. Shutdown may be called earlier: it is idempotent.
func Start(t testing.TB, dir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(context.Background(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() { Shutdown(t, srv) })
	return srv
}

// Shutdown shuts srv down within 10 seconds, failing the test on error.
func Shutdown(t testing.TB, srv *embedded.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown embedded server: %v", err)
	}
}

// Connect opens an in-process connection named name, closed when the test
// ends.
func Connect(t testing.TB, srv *embedded.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(name)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
