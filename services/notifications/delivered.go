package notifications

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
)

// DeliveredTTL is how long a delivery is remembered as done: longer than a
// task can wait for redelivery or replay in practice.
const DeliveredTTL = 7 * 24 * time.Hour

// deliveredStore remembers which (webhook, event) pairs were delivered.
type deliveredStore interface {
	seen(ctx context.Context, key string) (bool, error)
	mark(ctx context.Context, key string) error
}

// openDelivered keeps the marks in the shared cache (Redis) when there is
// one, else in a key-value bucket.
func openDelivered(ctx context.Context, js jetstream.JetStream, b cache.Backend, r messaging.Replication) (deliveredStore, error) {
	if b != nil {
		return cacheDelivered{b: b}, nil
	}
	return openKVDelivered(ctx, js, r)
}

// cacheDelivered keeps the marks in the shared cache backend (Redis). It
// asks "was this delivered?" without recording anything: recording before
// sending would lose the delivery on a crash.
type cacheDelivered struct{ b cache.Backend }

func (c cacheDelivered) key(k string) string { return cache.Key(contract.ServiceName+":delivered", k) }

func (c cacheDelivered) seen(ctx context.Context, key string) (bool, error) {
	_, ok, err := c.b.Get(ctx, c.key(key))
	return ok, err
}

func (c cacheDelivered) mark(ctx context.Context, key string) error {
	_, err := c.b.SetIfNewer(ctx, c.key(key), cache.Entry{Version: 1, Value: []byte("1")}, DeliveredTTL)
	return err
}

// kvDelivered keeps the marks in a key-value bucket whose entries expire,
// for deployments without a cache.
type kvDelivered struct{ kv jetstream.KeyValue }

func openKVDelivered(ctx context.Context, js jetstream.JetStream, r messaging.Replication) (kvDelivered, error) {
	kv, err := messaging.EnsureKeyValue(ctx, js, r.KeyValue(jetstream.KeyValueConfig{
		Bucket:      contract.DeliveredBucket,
		Description: "Deliveries done, by webhook and event id (hashed), kept for a week.",
		TTL:         DeliveredTTL,
		Storage:     jetstream.FileStorage,
	}))
	return kvDelivered{kv: kv}, err
}

// kvKey turns "<webhook>:<event id>" into a valid key: event ids may hold
// characters keys may not.
func kvKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

func (k kvDelivered) seen(ctx context.Context, key string) (bool, error) {
	_, err := k.kv.Get(ctx, kvKey(key))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (k kvDelivered) mark(ctx context.Context, key string) error {
	_, err := k.kv.Put(ctx, kvKey(key), []byte("1"))
	return err
}
