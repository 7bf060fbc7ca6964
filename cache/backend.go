package cache

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by a backend used after Close.
var ErrClosed = errors.New("cache: closed")

// Entry is a cached value with the version of the data it was made from.
type Entry struct {
	Version int64
	Value   []byte
}

// Backend stores entries with expiry. Implementations are safe for
// concurrent use. A stored value that cannot be decoded (garbage, another
// format) is a miss, never an error.
type Backend interface {
	// Get returns the entry under key; ok is false when there is none.
	Get(ctx context.Context, key string) (e Entry, ok bool, err error)
	// SetIfNewer stores e under key for ttl unless the entry already
	// stored has a version >= e.Version. It reports whether it stored.
	SetIfNewer(ctx context.Context, key string, e Entry, ttl time.Duration) (bool, error)
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// SetNX stores value under key for ttl only if key is absent, and
	// reports whether it did.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Name is "redis" or "memory", for logs and health.
	Name() string
	Close() error
}

// Config is how a service is given its caches: the shared backend (Redis),
// if any, and the bounds of the caches it builds on it and in process.
type Config struct {
	// Backend is the cache shared by the replicas; nil for none.
	Backend Backend
	// TTL bounds how long a shared entry lives (default DefaultTTL).
	TTL time.Duration
	// Budget bounds each call to the shared backend (default
	// DefaultBudget); past it, the read goes to the source.
	Budget time.Duration
	// LocalEntries bounds the in-process cache (default
	// DefaultLocalEntries); -1 turns it off.
	LocalEntries int
}
