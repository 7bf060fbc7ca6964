package cache_test

import (
	"testing"
	"time"

	"github.com/devloop/switchboard/cache/cachetest"
)

// startRedis starts a real redis-server for one test.
func startRedis(t testing.TB) *cachetest.Redis { return cachetest.StartRedis(t) }

// checkFor polls f until it returns nil or the timeout passes.
func checkFor(t testing.TB, timeout, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(every)
	}
}
