// Package cache is Switchboard's shared cache: cache-aside reads with
// version-conditional fills, and an idempotency store for consumers.
//
// Two backends implement [Backend] with the same semantics and pass the
// same behaviour suite: [Redis] (go-redis v9), shared by every replica, and
// [Memory], in-process, for `switchboard dev` without Redis.
//
// Redis is optional to correctness. Every call has a small time budget, a
// circuit breaker skips Redis for a moment after repeated failures, and a
// read that cannot use the cache falls back to its loader (the source of
// truth). A fill never replaces an entry of a newer version, so a slow
// reader cannot overwrite what a write put there; see [Aside].
package cache
