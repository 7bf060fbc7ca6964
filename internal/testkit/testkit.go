// Package testkit holds the helpers every test package of Switchboard
// shares: polling for a condition with a deadline instead of sleeping,
// and a free port.
// Servers for tests come from embedded/embeddedtest, Redis from
// cache/cachetest.
package testkit

import (
	"net"
	"testing"
	"time"
)

// Eventually calls f every interval until it returns nil, and fails the test
// with f's last error once within has passed. It is how a test waits for
// something that happens asynchronously: never a bare sleep.
func Eventually(t testing.TB, within, interval time.Duration, f func() error) {
	t.Helper()
	if err := Poll(within, interval, f); err != nil {
		t.Fatalf("still failing after %v: %v", within, err)
	}
}

// Poll calls f every interval until it returns nil, and returns f's last
// error once within has passed (nil when f succeeded). It is Eventually for
// the places that must not fail the test themselves, such as a goroutine.
func Poll(within, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(interval) // the polling interval, not synchronisation
	}
}

// FreeAddr is a loopback host:port that was free a moment ago, for a
// server a test starts that cannot listen on port 0 and say where it went
// (a cluster route, a child process).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
