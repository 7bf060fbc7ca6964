package contract_test

import (
	"testing"

	"github.com/devloop/switchboard/services/notifications/contract"
)

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
