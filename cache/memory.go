package cache

import (
	"context"
	"sync"
	"time"
)

// DefaultMemoryEntries bounds a Memory backend made with size 0.
const DefaultMemoryEntries = 100_000

// Memory is an in-process Backend with the same semantics as Redis, for a
// single process (`switchboard dev` without Redis). When full, it evicts
// expired entries first, then arbitrary ones.
type Memory struct {
	mu      sync.Mutex
	max     int
	entries map[string]memEntry
	closed  bool
	now     func() time.Time
}

type memEntry struct {
	versioned bool
	entry     Entry
	expires   time.Time
}

// NewMemory returns an in-process backend holding at most maxEntries
// entries (DefaultMemoryEntries when 0).
func NewMemory(maxEntries int) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMemoryEntries
	}
	return &Memory{max: maxEntries, entries: map[string]memEntry{}, now: time.Now}
}

// Name returns "memory".
func (m *Memory) Name() string { return "memory" }

func (m *Memory) live(key string) (memEntry, bool) {
	e, ok := m.entries[key]
	if ok && !m.now().Before(e.expires) {
		delete(m.entries, key)
		return memEntry{}, false
	}
	return e, ok
}

func (m *Memory) store(key string, e memEntry) {
	if _, exists := m.entries[key]; !exists && len(m.entries) >= m.max {
		m.evict()
	}
	m.entries[key] = e
}

// evict frees room: expired entries first, else one arbitrary entry (Go's
// map order is random, which makes this random eviction).
func (m *Memory) evict() {
	now := m.now()
	freed := false
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
			freed = true
		}
	}
	if freed {
		return
	}
	for k := range m.entries {
		delete(m.entries, k)
		return
	}
}

// Get implements Backend.
func (m *Memory) Get(_ context.Context, key string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Entry{}, false, ErrClosed
	}
	e, ok := m.live(key)
	if !ok || !e.versioned {
		return Entry{}, false, nil
	}
	return Entry{Version: e.entry.Version, Value: append([]byte(nil), e.entry.Value...)}, true, nil
}

// SetIfNewer implements Backend.
func (m *Memory) SetIfNewer(_ context.Context, key string, e Entry, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	if cur, ok := m.live(key); ok && cur.versioned && cur.entry.Version >= e.Version {
		return false, nil
	}
	m.store(key, memEntry{versioned: true, entry: Entry{Version: e.Version, Value: append([]byte(nil), e.Value...)}, expires: m.now().Add(ttl)})
	return true, nil
}

// Delete implements Backend.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.entries, key)
	return nil
}

// SetNX implements Backend.
func (m *Memory) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	if _, ok := m.live(key); ok {
		return false, nil
	}
	m.store(key, memEntry{entry: Entry{Value: append([]byte(nil), value...)}, expires: m.now().Add(ttl)})
	return true, nil
}

// Ping implements Backend.
func (m *Memory) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Backend.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.entries = nil
	return nil
}
