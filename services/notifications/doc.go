// Package notifications is the notifications service: it turns the users
// and orders event streams into signed HTTP webhooks. Webhooks live in the
// NOTIFICATIONS_WEBHOOKS key-value bucket, which every replica watches. A
// durable consumer per event stream fans each event out into one delivery
// task per matching webhook (stream NOTIFICATIONS, subject
// notifications.deliveries.<webhook id>), and one durable consumer per
// webhook POSTs them, so a slow receiver only delays itself. Failed
// deliveries are retried with backoff, then dead-lettered, listed and
// replayed over notifications.deadletters.*. docs/notifications.md
// documents the contract.
package notifications
