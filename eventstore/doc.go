// Package eventstore keeps entities as events on a JetStream stream: the
// last event on an entity's subjects is its current state, and their
// history is its audit trail. It is the one store that services built on
// Switchboard share; a service keeps only its own rules (which fields
// change, which values must be unique, which transitions are allowed).
//
// What the store does for every entity kind:
//
//   - Writes are single conditional publishes: the event, conditional on the
//     entity's last sequence over its write filter (optimistic concurrency).
//     A unique value is claimed by a conditional message of its own before
//     the event; a claim alone holds nothing (the entity's state decides),
//     and a writer that meets a claim whose owner does not hold the value
//     fences that owner, which makes the owner's in-flight write fail. So a
//     crash at any point leaves nothing to repair, no lock and no grace
//     period. Idempotency records are written before the create they
//     record, with the request's fingerprint, and a retry finishes a first
//     attempt that died under the same id. (An atomic batch would do this in
//     one message, but JetStream's batches cost one fsync each on a file
//     stream: about 60 per second against 17,000 plain publishes.)
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
