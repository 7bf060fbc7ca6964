// Package projector is the query side of Switchboard: a service that
// follows the USERS and ORDERS streams into PostgreSQL tables with exactly
// the effect of applying every event once, in order, and answers searches
// (users.search, orders.search) from them.
//
// Each batch of events and the stream sequence it reaches are written in
// one transaction; every row carries its entity's version, so a
// redelivered or replayed event changes nothing. One replica per stream
// leads, elected with a PostgreSQL advisory lock held by the session that
// writes; the others stand by. See docs/projector.md.
package projector
