package notifications

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrPrivateAddress is the failure of a delivery to an address that is not
// public while such addresses are refused: private, loopback, link-local,
// shared (CGNAT), documentation, NAT64, 6to4, and everything else in the
// IANA special-purpose registries for IPv4 and IPv6.
var ErrPrivateAddress = errors.New("notifications: private address refused")

// Timeouts of the outbound HTTP client.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	DefaultDeliveryTimeout       = 30 * time.Second
	maxResponseBody              = 64 << 10
)

// guardian is the SSRF filter: code.dny.dev/ssrf, which follows the IANA
// registries, on any port (receivers choose theirs).
func guardian() *ssrf.Guardian { return ssrf.New(ssrf.WithAnyPort()) }

// checkPublic reports a non-public ip as ErrPrivateAddress.
func checkPublic(ip netip.Addr) error {
	if err := guardian().SafeAddr(ip); err != nil {
		return fmt.Errorf("%w: %s (set webhook-private-addresses=allow to permit it)", ErrPrivateAddress, ip)
	}
	return nil
}

// newHTTPClient returns the client deliveries use: bounded at every step,
// no redirects, no proxy from the environment, and, unless allowPrivate,
// a dialer that refuses non-public addresses. The check runs on the
// address actually dialled, after DNS resolution, so a name that resolves
// (or rebinds) to 127.0.0.1 is refused too.
func newHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		g := guardian()
		dialer.Control = func(network, address string, c syscall.RawConn) error {
			if err := g.Safe(network, address, c); err != nil {
				ap, perr := netip.ParseAddrPort(address)
				if perr != nil {
					return fmt.Errorf("%w: %v", ErrPrivateAddress, err)
				}
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
