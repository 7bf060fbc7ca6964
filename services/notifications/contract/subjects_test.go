package contract_test

import (
	"testing"

	"github.com/devloop/switchboard/services/notifications/contract"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		givenFilter, givenSubject string
		want                      bool
	}{
		{"users.events.*", "users.events.01J", true},
		{"users.events.*", "users.events", false},
		{"users.events.*", "users.events.a.b", false},
		{"users.events.>", "users.events.a", true},
		{"users.events.>", "users.events.a.b", true},
		{"users.events.>", "users.events", false},
		{">", "orders.events.a.placed", true},
		{"orders.events.*.placed", "orders.events.a.placed", true},
		{"orders.events.*.placed", "orders.events.a.cancelled", false},
		{"orders.*.*.*", "orders.events.a.placed", true},
		{"orders.events.a.*", "orders.events.b.placed", false},
		{"users.events.a", "users.events.a", true},
		{"users.events.a", "users.events.ab", false},
		{"users.events.*", "users.events.", false},
		{"*", "users", true},
		{"*", "users.events", false},
	}
	for _, tt := range tests {
		if got := contract.Match(tt.givenFilter, tt.givenSubject); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.givenFilter, tt.givenSubject, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		given string
		want  bool
	}{
		{"users.events.*", true},
		{"users.events.>", true},
		{"users.events.01J", true},
		{"orders.events.*.placed", true},
		{"orders.events.>", true},
		{"orders.>", true},
		{"*.events.>", true},
		{">", true},
		{"", false},
		{"users", false},
		{"users.*", false},
		{"users.events.*.*", false},
		{"orders.events.*", false},
		{"payments.events.*", false},
		{"users.events.a*", false},
		{"users.>.x", false},
		{"users..events", false},
		{"users.events. x", false},
	}
	for _, tt := range tests {
		if got := contract.ValidFilter(tt.given); got != tt.want {
			t.Errorf("ValidFilter(%q) = %v, want %v", tt.given, got, tt.want)
		}
	}
}
