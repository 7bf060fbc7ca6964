// Package orders is the orders service: place, read, list and cancel orders
// over NATS request-reply (subjects orders.*), with the ORDERS JetStream
// stream as the source of truth and events on orders.events.<id>.<kind>. It
// calls the users service over NATS to check that a user exists, and a
// durable consumer of users.events cancels the open orders of a deleted
// user. docs/orders.md documents the contract.
package orders
