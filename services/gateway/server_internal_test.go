package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/devloop/switchboard/embedded/embeddedtest"
)

// Every phase of an HTTP exchange is bounded, as docs/gateway.md says.
func TestServerTimeouts(t *testing.T) {
	srv := embeddedtest.Start(t, t.TempDir())
	s, err := Start(context.Background(), embeddedtest.Connect(t, srv, "gateway"), "127.0.0.1:0", Options{MaxTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop(context.Background()) }()
	h := s.srv
	for name, got := range map[string]time.Duration{
		"ReadHeaderTimeout": h.ReadHeaderTimeout - 5*time.Second,
		"ReadTimeout":       h.ReadTimeout - 30*time.Second,
		"WriteTimeout":      h.WriteTimeout - 30*time.Second,
		"IdleTimeout":       h.IdleTimeout - 120*time.Second,
	} {
		if got != 0 {
			t.Errorf("%s is %s off what docs/gateway.md says", name, got)
		}
	}
	if h.MaxHeaderBytes != 64<<10 {
		t.Errorf("MaxHeaderBytes = %d", h.MaxHeaderBytes)
	}
}

func TestCompareSemver(t *testing.T) {
	ordered := []string{"not-a-version", "0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+build.7", "1.2.0", "1.10.0", "2.0.0"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if ordered[i] == "1.0.0" && ordered[j] == "1.0.0+build.7" || ordered[i] == "1.0.0+build.7" && ordered[j] == "1.0.0" {
				want = 0 // build metadata does not order
			}
			if got := compareSemver(ordered[i], ordered[j]); got != want {
				t.Errorf("compareSemver(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

// A full bucket is forgotten at the next sweep: memory follows the active
// callers.
func TestLimitersSweep(t *testing.T) {
	l := newLimiters(10, 5)
	now := time.Now()
	for i := range minSweep {
		if ok, _ := l.allow(string(rune(i)), now); !ok {
			t.Fatal("a new caller was refused")
		}
	}
	later := now.Add(time.Second) // every bucket is full again
	l.allow("new", later)         // the map is at the sweep mark: sweeps
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets after the sweep, want 1 (the new caller's)", n)
	}
}
