// Package testkit holds the helpers every test package of Switchboard
// shares: polling for a condition with a deadline instead of sleeping,
// and a free port.
// Servers for tests come from embedded/embeddedtest, Redis from
// cache/cachetest.
package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
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
// (a cluster route, a child process), or that must keep its address
// across restarts. The port is drawn at random from below the kernel's
// ephemeral range (ip_local_port_range), which the kernel never hands to
// a port-0 listener or an outgoing connection of another test; so between
// this check and the server's own listen only another FreeAddr could take
// it, by drawing the same port. Without such a range it falls back to a
// port the kernel picks.
func FreeAddr(t testing.TB) string {
	t.Helper()
	if low := ephemeralLow(); low > 1024+1000 {
		for range 50 {
			port := 1024 + rand.IntN(low-1024)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				addr := ln.Addr().String()
				_ = ln.Close()
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0
// when it cannot be read (not Linux).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return low
}
