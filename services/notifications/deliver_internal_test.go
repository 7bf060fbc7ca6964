package notifications

import (
	"net/http"
	"net/netip"
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

func TestPublicIP(t *testing.T) {
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
	} {
		if got := publicIP(netip.MustParseAddr(tt.given)); got != tt.want {
			t.Errorf("publicIP(%s) = %v, want %v", tt.given, got, tt.want)
		}
	}
}

func TestSign(t *testing.T) {
	// HMAC-SHA256 of "1700000000.{}" keyed "secret", computed with Python's hmac.
	const want = "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
	if got := Sign("secret", "1700000000", []byte("{}")); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}
