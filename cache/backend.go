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
