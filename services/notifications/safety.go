package notifications

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress is the failure of a delivery to a private, loopback,
// link-local, unspecified or multicast address while they are refused.
var ErrPrivateAddress = errors.New("notifications: private address refused")

// Timeouts of the outbound HTTP client.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	DefaultDeliveryTimeout       = 30 * time.Second
	maxResponseBody              = 64 << 10
)

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), as
// internal as RFC 1918's.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicIP reports whether ip is a routable unicast address.
func publicIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!ip.IsLinkLocalMulticast() && !ip.IsInterfaceLocalMulticast() && !ip.IsMulticast() &&
		!ip.IsUnspecified() && !cgnat.Contains(ip)
}

// newHTTPClient returns the client deliveries use: bounded at every step,
// no redirects, no proxy from the environment, and, unless allowPrivate,
// a dialer that refuses non-public addresses. The check runs on the
// address actually dialled, after DNS resolution, so a name that resolves
// (or rebinds) to 127.0.0.1 is refused too.
func newHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse %q", ErrPrivateAddress, address)
			}
			if !publicIP(ap.Addr()) {
				return fmt.Errorf("%w: %s (set webhook-private-addresses=allow to permit it)", ErrPrivateAddress, ap.Addr())
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   DefaultDialTimeout,
			ResponseHeaderTimeout: DefaultResponseHeaderTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
