package testkit

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddr gives a loopback address a server can listen on, and on a
// kernel with an ephemeral range, a port below it: one no port-0 listener
// or outgoing connection of another test can be given meanwhile.
func TestFreeAddrIsBindableAndOutsideTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		addr := FreeAddr(t)
		host, p, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("FreeAddr = %q (%v), want a 127.0.0.1 host:port", addr, err)
		}
		port, _ := strconv.Atoi(p)
		if low > 2024 && (port < 1024 || port >= low) {
			t.Fatalf("FreeAddr port %d, want one in [1024, %d): below the ephemeral range", port, low)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on FreeAddr's %s: %v", addr, err)
		}
		ln.Close()
	}
}
