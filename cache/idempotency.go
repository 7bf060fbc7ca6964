package cache

import (
	"context"
	"fmt"
	"time"
)

// Idempotency records which side effects were already applied, so that a
// redelivered event applies its side effect once: Claim before applying,
// Release if applying failed and should be retried.
type Idempotency struct {
	b      Backend
	prefix string
}

// NewIdempotency returns an idempotency store on b with keys
// <prefix>idem:<key> (prefix DefaultPrefix when empty).
func NewIdempotency(b Backend, prefix string) *Idempotency {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Idempotency{b: b, prefix: prefix + "idem:"}
}

// Claim records key for ttl and reports whether this call was the first:
// false means the side effect was already claimed.
func (i *Idempotency) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	first, err := i.b.SetNX(ctx, i.prefix+key, []byte("1"), ttl)
	if err != nil {
		return false, fmt.Errorf("claim %q: %w", key, err)
	}
	return first, nil
}

// Release forgets key, so that a later Claim succeeds again.
func (i *Idempotency) Release(ctx context.Context, key string) error {
	if err := i.b.Delete(ctx, i.prefix+key); err != nil {
		return fmt.Errorf("release %q: %w", key, err)
	}
	return nil
}
