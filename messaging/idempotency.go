package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/wire"
)

// IdempotencyKeys remembers, in a KV bucket, which entity the first request
// with an Idempotency-Key created, so a retry returns it instead of
// creating another. Keys are stored hashed (SHA-256).
type IdempotencyKeys struct {
	kv jetstream.KeyValue
}

// OpenIdempotencyKeys declares bucket (create-only, file storage, entries
// expiring after ttl).
func OpenIdempotencyKeys(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration) (*IdempotencyKeys, error) {
	kv, err := EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "sha256(Idempotency-Key) -> id of what the first request created",
		Storage:     jetstream.FileStorage,
		TTL:         ttl,
	})
	if err != nil {
		return nil, err
	}
	return &IdempotencyKeys{kv: kv}, nil
}

// Claim records id for key unless key is known, and returns the id recorded
// first: id itself for the first request, the first request's id for a
// retry.
func (k *IdempotencyKeys) Claim(ctx context.Context, key, id string) (string, error) {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	if _, err := k.kv.Create(ctx, h, []byte(id)); err == nil {
		return id, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("record idempotency key: %w", err)
	}
	entry, err := k.kv.Get(ctx, h)
	if err != nil {
		return "", fmt.Errorf("read idempotency key: %w", err)
	}
	return string(entry.Value()), nil
}

// IdempotencyKey returns the request's Idempotency-Key header ("" when
// absent), or a 400 when it is longer than wire.MaxIdempotencyKey.
func IdempotencyKey(ctx context.Context) (string, error) {
	m, ok := RequestFromContext(ctx)
	if !ok {
		return "", nil
	}
	key := header(m.Header, wire.HeaderIdempotencyKey)
	if len(key) > wire.MaxIdempotencyKey {
		return "", wire.NewError(wire.CodeBadRequest, "invalid request",
			wire.Detail{Field: wire.HeaderIdempotencyKey, Message: fmt.Sprintf("must be at most %d bytes", wire.MaxIdempotencyKey)})
	}
	return key, nil
}
