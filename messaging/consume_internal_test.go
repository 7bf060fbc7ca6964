package messaging

import (
	"testing"
	"time"
)

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	tests := []struct {
		delivered        uint64
		wantMin, wantMax time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second},  // capped at RetryMax
		{60, time.Second, 2 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		for range 200 {
			if d := backoff(100*time.Millisecond, 2*time.Second, tt.delivered); d < tt.wantMin || d > tt.wantMax {
				t.Fatalf("backoff(%d) = %s, want %s..%s", tt.delivered, d, tt.wantMin, tt.wantMax)
			}
		}
	}
}
