// Package eventstore keeps entities as events on a JetStream stream: the
// last event on an entity's subjects is its current state, and their
// history is its audit trail. It is the one store that services built on
// Switchboard share; a service keeps only its own rules (which fields
// change, which values must be unique, which transitions are allowed).
//
// What the store does for every entity kind:
//
//   - Writes are one atomic batch on one stream: the event, conditional on
//     the entity's last sequence (optimistic concurrency), together with
//     the unique keys it reserves or releases, its listing index entry and
//     its idempotency record. One round trip; all or nothing, so there is
//     no half-written state to repair and no grace period to wait out.
//   - Reads of one entity ask the stream leader, so they see every
//     acknowledged write, also on a replicated stream whose followers lag.
//     A message on an entity's subject that is not a valid event (one that
//     does not decode, or is about another entity) is skipped, so one bad
//     message never makes an entity unreadable.
//   - An in-process cache (bounded, W-TinyLFU) serves hot reads. A change
//     feed of the stream invalidates it, so an entry never outlives a write
//     by more than the feed's delay; when the feed breaks, the cache is
//     emptied and bypassed until it works again. An optional shared cache
//     (Redis) sits below it, invalidated by a durable consumer that retries
//     until it succeeds, and not read until those invalidations caught up.
//   - Listings are read page by page from the stream (an index subject per
//     listing), so memory and start-up do not grow with the data.
//
// The subjects of the store's own messages are under Config.Internal; a
// stream's consumers filter on its event subjects and never see them.
// docs/guarantees.md states what each operation guarantees and names the
// tests that prove it.
package eventstore
