package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Defaults for Options.
const (
	DefaultPrefix      = "switchboard:"
	DefaultTTL         = 5 * time.Minute
	DefaultNegativeTTL = 5 * time.Second
	DefaultBudget      = 50 * time.Millisecond
	DefaultLoadTimeout = 10 * time.Second
	// DefaultBreakerFailures consecutive failures open the breaker for
	// DefaultBreakerCooldown, during which the backend is not called.
	DefaultBreakerFailures = 3
	DefaultBreakerCooldown = time.Second
)

// ErrInvalidOption is wrapped by NewAside given bad options.
var ErrInvalidOption = errors.New("cache: invalid option")

// Options tune an Aside. Zero fields take the defaults.
type Options struct {
	// Prefix namespaces keys: <Prefix><Namespace>:<key>, e.g.
	// "switchboard:users:01JD…".
	Prefix    string
	Namespace string
	// TTL bounds how long an entry lives; each entry's TTL gets ±10%
	// jitter so a burst of fills does not expire at once.
	TTL time.Duration
	// NegativeTTL is how long "not found" is remembered.
	NegativeTTL time.Duration
	// Budget bounds each backend call on the request path; past it the
	// read falls back to the loader.
	Budget time.Duration
	// LoadTimeout bounds a shared load (which outlives the caller that
	// started it, since other callers wait for it too).
	LoadTimeout time.Duration
	// Logger receives rate-limited warnings; nil discards.
	Logger *slog.Logger
	// Gate, when set, is asked before each read of the backend: while it
	// returns false, reads go to the loader. The owner closes it while
	// the backend may hold entries whose invalidation is not applied yet
	// (after a backend failure, until its invalidations caught up).
	Gate func() bool

	// beforeFill, in tests, runs between a load and its fill.
	beforeFill func()
}

// Stats counts what an Aside did.
type Stats struct {
	Hits         uint64 `json:"hits"`
	NegativeHits uint64 `json:"negative_hits"`
	Misses       uint64 `json:"misses"`
	Loads        uint64 `json:"loads"`
	Errors       uint64 `json:"errors"`
	Skipped      uint64 `json:"skipped"` // reads not made: breaker open or gate closed
	// BreakerOpen is true while the breaker keeps calls off the backend.
	BreakerOpen bool `json:"breaker_open"`
}

// HitRatio is (hits + negative hits) / lookups.
func (s Stats) HitRatio() float64 {
	hits := s.Hits + s.NegativeHits
	if total := hits + s.Misses; total > 0 {
		return float64(hits) / float64(total)
	}
	return 0
}

// Aside is a cache-aside over a Backend for values of type T, encoded as
// JSON. Reads go to the cache and, on a miss, to a loader, at most one load
// per key at a time in this process. Fills are conditional on the version,
// so a value never replaces a newer one.
type Aside[T any] struct {
	b      Backend
	o      Options
	logger *slog.Logger
	group  singleflight.Group
	warn   rate.Sometimes

	hits, negHits, misses, loads, errs, skipped atomic.Uint64

	mu        sync.Mutex
	failures  int
	openUntil time.Time
}

// NewAside returns an Aside over b.
func NewAside[T any](b Backend, o Options) (*Aside[T], error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidOption)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.TTL, DefaultTTL)
	def(&o.NegativeTTL, DefaultNegativeTTL)
	def(&o.Budget, DefaultBudget)
	def(&o.LoadTimeout, DefaultLoadTimeout)
	if o.TTL < 0 || o.NegativeTTL < 0 || o.Budget < 0 || o.LoadTimeout < 0 {
		return nil, fmt.Errorf("%w: negative duration", ErrInvalidOption)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Aside[T]{b: b, o: o, logger: logger.With(slog.String("cache", b.Name())), warn: rate.Sometimes{Interval: 10 * time.Second}}, nil
}

// Key returns the backend key for key.
func (a *Aside[T]) Key(key string) string {
	if a.o.Namespace == "" {
		return a.o.Prefix + key
	}
	return a.o.Prefix + a.o.Namespace + ":" + key
}

// Key is the backend key of key in namespace, as an Aside with the default
// prefix names it: "switchboard:<namespace>:<key>". Everything Switchboard
// keeps in a shared backend is named this way.
func Key(namespace, key string) string {
	return DefaultPrefix + namespace + ":" + key
}

// Loader loads the value for a key from the source of truth: the value, its
// version, and whether it exists.
type Loader[T any] func(ctx context.Context) (value T, version int64, found bool, err error)

// value is what is cached: a value, the fact that there is none, or that
// the entry is stale (invalidated, to be loaded again).
type value[T any] struct {
	Found bool `json:"f"`
	Value T    `json:"v,omitempty"`
	Stale bool `json:"s,omitempty"`
}

// Versions as the backend sees them: a value of version v is stored at
// 2v+1, an invalidation of version v at 2v. So an invalidation replaces
// every value older than its write, and a value loaded after the write
// (version v or later) replaces the invalidation.
func valueVersion(v int64) int64 { return 2*v + 1 }
func staleVersion(v int64) int64 { return 2 * v }

type result[T any] struct {
	v      T
	found  bool
	cached bool
}

// Get returns the value for key and whether it exists: from the cache when
// it holds an entry, else from load, filling the cache. Concurrent calls
// for one key share one lookup (cache read, and load on a miss), so a hot
// or cold key costs one backend round trip and at most one load at a time
// in this process; a caller that joined a lookup that then failed, with
// time left, tries once more itself. Cache failures are never returned:
// they cost at most the budget and fall back to load.
func (a *Aside[T]) Get(ctx context.Context, key string, load Loader[T]) (T, bool, error) {
	k := a.Key(key)
	r, err := shared(ctx, &a.group, k, func() (any, error) {
		// The lookup outlives the caller that started it, because
		// others wait for it too.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.LoadTimeout)
		defer cancel()
		e, ok, failed := a.get(lctx, k)
		if ok {
			var v value[T]
			if json.Unmarshal(e.Value, &v) == nil && !v.Stale {
				return result[T]{v: v.Value, found: v.Found, cached: true}, nil
			}
			// Invalidated, or our prefix but not our shape: a miss;
			// the fill replaces it.
		}
		a.loads.Add(1)
		v, version, found, err := load(lctx)
		if err != nil {
			return nil, err
		}
		if a.o.beforeFill != nil {
			a.o.beforeFill()
		}
		ttl := a.jitter(a.o.TTL)
		if !found {
			ttl = a.jitter(a.o.NegativeTTL)
		}
		if !failed {
			// A backend that just failed would most likely fail again:
			// the read costs at most one budget, not two.
			a.set(lctx, k, valueVersion(version), value[T]{Found: found, Value: v}, ttl)
		}
		return result[T]{v: v, found: found}, nil
	})
	if err != nil {
		if ctx.Err() == nil { // a failed lookup, not a caller that gave up
			a.misses.Add(1)
		}
		var zero T
		return zero, false, err
	}
	res := r.(result[T])
	switch {
	case !res.cached:
		a.misses.Add(1)
	case res.found:
		a.hits.Add(1)
	default:
		a.negHits.Add(1)
	}
	return res.v, res.found, nil
}

// Put records that key now has v at version, after a write. It replaces
// older entries and is ignored by newer ones. It is best effort: a write
// that does not reach the backend is made good by Invalidate, which the
// owner calls, retrying, for every write (from a change feed).
func (a *Aside[T]) Put(ctx context.Context, key string, version int64, v T) {
	a.write(ctx, key, valueVersion(version), value[T]{Found: true, Value: v}, a.jitter(a.o.TTL))
}

// Absent records that key no longer exists as of version (a delete); best
// effort, like Put.
func (a *Aside[T]) Absent(ctx context.Context, key string, version int64) {
	a.write(ctx, key, valueVersion(version), value[T]{}, a.jitter(a.o.TTL))
}

// Invalidate records that key was written at version: an entry older than
// that write becomes a miss, and no fill older than it is kept. Unlike Put
// it reports failure, so that its caller retries until the backend
// answers.
func (a *Aside[T]) Invalidate(ctx context.Context, key string, version int64) error {
	k := a.Key(key)
	a.group.Forget(k)
	data, err := json.Marshal(value[T]{Stale: true})
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, a.o.Budget)
	defer cancel()
	_, err = a.b.SetIfNewer(bctx, k, Entry{Version: staleVersion(version), Value: data}, a.jitter(a.o.TTL))
	a.record(err, "invalidate")
	if err != nil {
		return fmt.Errorf("invalidate %s: %w", k, err)
	}
	return nil
}

// write is the one place a write updates the cache.
func (a *Aside[T]) write(ctx context.Context, key string, version int64, v value[T], ttl time.Duration) {
	k := a.Key(key)
	// Readers in this process that come after the write must not join a
	// lookup that started before it.
	a.group.Forget(k)
	a.set(ctx, k, version, v, ttl)
}

// get reads k; failed is true when the backend was not asked (breaker
// open) or did not answer.
func (a *Aside[T]) get(ctx context.Context, k string) (e Entry, ok, failed bool) {
	if a.o.Gate != nil && !a.o.Gate() {
		a.skipped.Add(1)
		return Entry{}, false, false
	}
	if !a.allow() {
		return Entry{}, false, true
	}
	bctx, cancel := context.WithTimeout(ctx, a.o.Budget)
	defer cancel()
	e, ok, err := a.b.Get(bctx, k)
	a.record(err, "get")
	return e, ok && err == nil, err != nil
}

// set stores v unless a newer entry is there; it reports whether the
// backend answered (stored or refused), not whether it stored.
func (a *Aside[T]) set(ctx context.Context, k string, version int64, v value[T], ttl time.Duration) bool {
	if !a.allow() {
		return false
	}
	data, err := json.Marshal(v)
	if err != nil {
		a.logger.Error("cache: encode", slog.String("key", k), slog.String("error", err.Error()))
		return false
	}
	bctx, cancel := context.WithTimeout(ctx, a.o.Budget)
	defer cancel()
	_, err = a.b.SetIfNewer(bctx, k, Entry{Version: version, Value: data}, ttl)
	a.record(err, "set")
	return err == nil
}

// allow reports whether the backend may be called: not while the breaker
// is open, except for one probe once the cool-down has passed.
func (a *Aside[T]) allow() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failures < DefaultBreakerFailures {
		return true
	}
	if time.Now().Before(a.openUntil) {
		a.skipped.Add(1)
		return false
	}
	// Half-open: let this call probe, and hold the others back for
	// another cool-down in case it fails too.
	a.openUntil = time.Now().Add(DefaultBreakerCooldown)
	return true
}

func (a *Aside[T]) record(err error, op string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		if a.failures >= DefaultBreakerFailures {
			a.logger.Info("cache: backend is answering again")
		}
		a.failures = 0
		return
	}
	a.errs.Add(1)
	a.failures++
	if a.failures == DefaultBreakerFailures {
		a.openUntil = time.Now().Add(DefaultBreakerCooldown)
	}
	a.warn.Do(func() {
		a.logger.Warn("cache: backend failing; reading from the source of truth",
			slog.String("op", op), slog.String("error", err.Error()), slog.Int("consecutive_failures", a.failures))
	})
}

// Health pings the backend within the budget: nil when it answers, else
// the reason the cache is degraded (reads still work, from the source).
func (a *Aside[T]) Health(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, a.o.Budget)
	defer cancel()
	if err := a.b.Ping(bctx); err != nil {
		return fmt.Errorf("%s unavailable: %w", a.b.Name(), err)
	}
	return nil
}

// Stats returns the counters.
func (a *Aside[T]) Stats() Stats {
	a.mu.Lock()
	open := a.failures >= DefaultBreakerFailures && time.Now().Before(a.openUntil)
	a.mu.Unlock()
	return Stats{
		Hits: a.hits.Load(), NegativeHits: a.negHits.Load(), Misses: a.misses.Load(),
		Loads: a.loads.Load(), Errors: a.errs.Load(), Skipped: a.skipped.Load(),
		BreakerOpen: open,
	}
}

// Backend returns the backend's name.
func (a *Aside[T]) Backend() string { return a.b.Name() }

func (a *Aside[T]) jitter(d time.Duration) time.Duration {
	j := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + j
}
