package embedded

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// TestStartListenFatal skips the address pre-check so that nats-server itself
// fails to listen. Its Fatalf must neither exit the test binary nor leave
// Start waiting for ReadyTimeout.
func TestStartListenFatal(t *testing.T) {
	first, err := Start(t.Context(), Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := first.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})

	dir := t.TempDir()
	s, err := start(t.Context(), Options{Listen: first.Addr(), StoreDir: dir, ReadyTimeout: time.Minute}, false)
	if err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("second server on the same port started")
	}
	if !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want ErrAddrInUse wrapping EADDRINUSE", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v: Start waited for ReadyTimeout", err)
	}

	// The failed server was stopped before Start returned: its store is free.
	lock, err := lockStore(dir)
	if err != nil {
		t.Fatalf("store still locked after the failed Start: %v", err)
	}
	if err := lock.release(); err != nil {
		t.Fatal(err)
	}
}

func TestFatalfDoesNotBlock(t *testing.T) {
	l := newLogAdapter(slog.New(slog.DiscardHandler))
	for range cap(l.fatals) + 3 {
		l.Fatalf("Error listening on port: %s, %q", "x", errors.New("boom"))
	}
	f := <-l.fatals
	if f.err == nil || f.err.Error() != "boom" {
		t.Errorf("fatal error = %v, want boom", f.err)
	}
}
