package notifications

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		given  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.given, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tt.given, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestCheckPublic: the IANA special-purpose ranges that the hand-written
// filter let through are refused now, as the private ones always were.
func TestCheckPublic(t *testing.T) {
	for _, tt := range []struct {
		given string
		want  bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1::1", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fd00::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"100.64.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::1", false},  // 6to4 of 127.0.0.1
		{"::7f00:1", false},        // IPv4-compatible
		{"fec0::1", false},         // site-local
		{"192.0.0.8", false},       // IETF protocol assignments
		{"198.18.0.1", false},      // benchmarking
		{"240.0.0.1", false},       // reserved
		{"255.255.255.255", false}, // broadcast
		{"192.0.2.1", false},       // documentation
		{"2001:db8::1", false},     // documentation
	} {
		if got := checkPublic(netip.MustParseAddr(tt.given)) == nil; got != tt.want {
			t.Errorf("checkPublic(%s) allows = %v, want %v", tt.given, got, tt.want)
		}
	}
}

func TestSign(t *testing.T) {
	// The test vector of the Standard Webhooks specification.
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	got, err := Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`), secret)
	if err != nil || got != want {
		t.Errorf("Sign = %q, %v; want %q", got, err, want)
	}
	two, err := Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`), secret, "whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err != nil || !strings.HasPrefix(two, want+" v1,") {
		t.Errorf("Sign with two secrets = %q, %v; want the current one's first, then the previous one's", two, err)
	}
	if _, err := Sign("id", 1, nil, "s3cret-not-whsec"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Sign with a bad secret: %v, want an error that does not show it", err)
	}
}
