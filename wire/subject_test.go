package wire_test

import (
	"testing"

	"github.com/devloop/switchboard/wire"
)

func TestMatchSubject(t *testing.T) {
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
		if got := wire.MatchSubject(tt.givenFilter, tt.givenSubject); got != tt.want {
			t.Errorf("MatchSubject(%q, %q) = %v, want %v", tt.givenFilter, tt.givenSubject, got, tt.want)
		}
	}
}
