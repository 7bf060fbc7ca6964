package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
)

// DefaultLocalEntries bounds a Local cache made with 0 entries.
const DefaultLocalEntries = 50_000

// Local is an in-process cache of versioned values: each entry carries the
// sequence of the write it reflects, so it never goes back to an older one.
// Its size is bounded, with otter's adaptive W-TinyLFU eviction.
//
// It is kept current from outside: the owner applies its own writes (Put)
// and the writes it learns of from others, for example from a stream's
// change feed (Invalidate). A load that overlaps an invalidation of its key
// does not fill the cache, so a slow read cannot put back what a write
// replaced. When the owner can no longer learn of writes (its feed broke),
// it disables the cache: it empties, and reads go to the source until it
// is enabled again.
type Local[V any] struct {
	c     *otter.Cache[string, localEntry[V]]
	group singleflight.Group

	mu      sync.Mutex
	loads   map[string]*localLoad // loads in flight, by key
	gen     uint64                // bumped by Disable: loads begun before do not fill
	enabled bool

	hits, misses, fills, invalidations atomic.Uint64
}

type localEntry[V any] struct {
	v       V
	seq     uint64
	present bool
}

type localLoad struct {
	stale bool // an invalidation or a write of the key came meanwhile
}

// LocalStats counts what a Local did.
type LocalStats struct {
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
	Fills         uint64 `json:"fills"`
	Invalidations uint64 `json:"invalidations"`
	Entries       int    `json:"entries"`
	Enabled       bool   `json:"enabled"`
}

// NewLocal returns an enabled Local holding at most maxEntries entries
// (DefaultLocalEntries when 0).
func NewLocal[V any](maxEntries int) (*Local[V], error) {
	if maxEntries < 0 {
		return nil, fmt.Errorf("%w: local cache of %d entries", ErrInvalidOption, maxEntries)
	}
	if maxEntries == 0 {
		maxEntries = DefaultLocalEntries
	}
	c, err := otter.New(&otter.Options[string, localEntry[V]]{MaximumSize: maxEntries})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	return &Local[V]{c: c, loads: map[string]*localLoad{}, enabled: true}, nil
}

// LocalLoader reads key from the source: the value, the sequence of the
// write it reflects, and whether the key exists (a key that does not is
// cached as absent, at seq).
type LocalLoader[V any] func(ctx context.Context) (v V, seq uint64, present bool, err error)

// Get returns the value of key and its sequence: from the cache when it
// holds the key, else from load, filling the cache unless the key was
// written or invalidated meanwhile. Concurrent misses of one key share one
// load; a caller that joined a load that then failed, with time left, loads
// once more itself.
func (l *Local[V]) Get(ctx context.Context, key string, load LocalLoader[V]) (V, uint64, bool, error) {
	if e, ok := l.c.GetIfPresent(key); ok {
		l.hits.Add(1)
		return e.v, e.seq, e.present, nil
	}
	l.misses.Add(1)
	r, err := shared(ctx, &l.group, key, func() (any, error) {
		l.mu.Lock()
		ld := &localLoad{}
		l.loads[key] = ld
		gen := l.gen
		l.mu.Unlock()
		v, seq, present, err := load(context.WithoutCancel(ctx))
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.loads[key] == ld {
			delete(l.loads, key)
		}
		if err != nil {
			return nil, err
		}
		e := localEntry[V]{v: v, seq: seq, present: present}
		if !ld.stale && l.enabled && gen == l.gen {
			l.upsert(key, e)
			l.fills.Add(1)
		}
		return e, nil
	})
	if err != nil {
		var zero V
		return zero, 0, false, err
	}
	e := r.(localEntry[V])
	return e.v, e.seq, e.present, nil
}

// Put records that key has v (or, when !present, does not exist) as of
// write seq: the owner's own write. An entry at seq or later is kept.
func (l *Local[V]) Put(key string, seq uint64, v V, present bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.overtake(key)
	if l.enabled {
		l.upsert(key, localEntry[V]{v: v, seq: seq, present: present})
	}
}

// Invalidate records that key was written at seq by someone else: an entry
// older than seq is dropped, and a load in flight does not fill.
func (l *Local[V]) Invalidate(key string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.overtake(key)
	l.c.ComputeIfPresent(key, func(old localEntry[V]) (localEntry[V], otter.ComputeOp) {
		if old.seq < seq {
			l.invalidations.Add(1)
			return old, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
}

// overtake marks a load of key in flight as stale and makes later readers
// start their own. l.mu is held.
func (l *Local[V]) overtake(key string) {
	if ld, ok := l.loads[key]; ok {
		ld.stale = true
	}
	l.group.Forget(key)
}

// upsert stores e unless the entry holds a later write. l.mu is held.
func (l *Local[V]) upsert(key string, e localEntry[V]) {
	l.c.Compute(key, func(old localEntry[V], found bool) (localEntry[V], otter.ComputeOp) {
		if found && old.seq >= e.seq {
			return old, otter.CancelOp
		}
		return e, otter.WriteOp
	})
}

// Disable empties the cache and stops it filling: reads go to the source.
func (l *Local[V]) Disable() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled {
		return
	}
	l.enabled = false
	l.gen++
	for k, ld := range l.loads {
		ld.stale = true
		l.group.Forget(k)
	}
	l.c.InvalidateAll()
}

// Enable lets the cache fill again.
func (l *Local[V]) Enable() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enabled = true
}

// Enabled reports whether the cache fills.
func (l *Local[V]) Enabled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enabled
}

// Stats returns the counters.
func (l *Local[V]) Stats() LocalStats {
	return LocalStats{
		Hits: l.hits.Load(), Misses: l.misses.Load(), Fills: l.fills.Load(), Invalidations: l.invalidations.Load(),
		Entries: l.c.EstimatedSize(), Enabled: l.Enabled(),
	}
}

// Close stops the cache's background work.
func (l *Local[V]) Close() { l.c.StopAllGoroutines() }
