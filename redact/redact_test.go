package redact_test

import (
	"strings"
	"testing"

	"github.com/devloop/switchboard/redact"
)

func TestURL(t *testing.T) {
	tests := []struct{ name, given, want string }{
		{"password", "nats://alice:s3cretPW@nats.example:4222", "nats://alice:xxxxx@nats.example:4222"},
		{"token", "nats://s3cretTOKEN@nats.example:4222", "nats://xxxxx@nats.example:4222"},
		{"list", "nats://a:s3cretPW@n1:4222, nats://n2:4222", "nats://a:xxxxx@n1:4222, nats://n2:4222"},
		{"redis", "redis://:s3cretPW@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"no secret", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"unparsable with @", "nats://a:s3cret PW@%zz", "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URL(tt.given); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.given, got, tt.want)
			}
		})
	}
}

func TestWebURL(t *testing.T) {
	tests := []struct{ name, given, want string }{
		{"userinfo and query", "https://bob:s3cret@hooks.example.com/in?token=s3cret#x", "https://xxxxx@hooks.example.com/in?xxxxx"},
		{"plain", "https://hooks.example.com/in", "https://hooks.example.com/in"},
		{"unparsable", "https://s3cret@%zz", "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.WebURL(tt.given)
			if got != tt.want || strings.Contains(got, "s3cret") {
				t.Errorf("WebURL(%q) = %q, want %q", tt.given, got, tt.want)
			}
		})
	}
}
