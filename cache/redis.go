package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// entryPrefix starts every versioned value this package writes to Redis:
// "sb1:<version>:<value>". A value without it (garbage, an older or newer
// format) reads as a miss, and a fill overwrites it.
const entryPrefix = "sb1:"

// setIfNewer stores ARGV[2] under KEYS[1] with a PX of ARGV[3] unless the
// stored entry is ours and has a version >= ARGV[1]. Atomic in Redis, so a
// slow reader's fill cannot overwrite a newer write.
var setIfNewer = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = string.match(cur, '^sb1:(%d+):')
  if v and tonumber(v) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// RedisOptions configures a Redis backend.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS.
	URL string
	// Timeout bounds every command, dialling included (default 50ms).
	// Commands are not retried: a slow Redis costs at most this much.
	Timeout time.Duration
	// PoolSize is the connection pool size (0: go-redis's default).
	PoolSize int
}

// Redis is a Backend on Redis, shared by every replica.
type Redis struct {
	client *redis.Client
}

// NewRedis returns a Redis backend. It does not connect: a Redis that is
// down at start-up is a cache that misses until it is up.
func NewRedis(o RedisOptions) (*Redis, error) {
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("cache: redis url: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	opts.DialTimeout = o.Timeout
	opts.ReadTimeout = o.Timeout
	opts.WriteTimeout = o.Timeout
	opts.PoolTimeout = o.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1 // no retry loops: the caller falls back instead
	if o.PoolSize > 0 {
		opts.PoolSize = o.PoolSize
	}
	return &Redis{client: redis.NewClient(opts)}, nil
}

// Name returns "redis".
func (r *Redis) Name() string { return "redis" }

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, key string) (Entry, bool, error) {
	raw, err := r.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	e, ok := decodeEntry(raw)
	return e, ok, nil
}

func encodeEntry(e Entry) []byte {
	b := make([]byte, 0, len(entryPrefix)+20+1+len(e.Value))
	b = append(b, entryPrefix...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = append(b, ':')
	return append(b, e.Value...)
}

func decodeEntry(raw []byte) (Entry, bool) {
	rest, ok := bytes.CutPrefix(raw, []byte(entryPrefix))
	if !ok {
		return Entry{}, false
	}
	v, value, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return Entry{}, false
	}
	version, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || version < 0 {
		return Entry{}, false
	}
	return Entry{Version: version, Value: value}, true
}

// SetIfNewer implements Backend.
func (r *Redis) SetIfNewer(ctx context.Context, key string, e Entry, ttl time.Duration) (bool, error) {
	n, err := setIfNewer.Run(ctx, r.client, []string{key}, e.Version, encodeEntry(e), ttl.Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Delete implements Backend.
func (r *Redis) Delete(ctx context.Context, key string) error {
	return r.client.Del(ctx, key).Err()
}

// SetNX implements Backend.
func (r *Redis) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	// SET NX with an expiry, as one command (SetNX is deprecated in
	// Redis in favour of SET … NX).
	res, err := r.client.SetArgs(ctx, key, value, redis.SetArgs{Mode: "NX", TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return res == "OK", nil
}

// Ping implements Backend.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close implements Backend.
func (r *Redis) Close() error { return r.client.Close() }
