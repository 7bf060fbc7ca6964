package cache_test

import (
	"testing"

	"github.com/devloop/switchboard/cache/cachetest"
)

// startRedis starts a real redis-server for one test.
func startRedis(t testing.TB) *cachetest.Redis { return cachetest.StartRedis(t) }
