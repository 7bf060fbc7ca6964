// Package users is the users service: create, read, update, delete and list
// users over NATS request-reply (subjects users.*), with the USERS JetStream
// stream as the source of truth and a public event contract on
// users.events.<id>. The contract package holds the subjects and payloads
// that callers import; docs/users.md documents them for everybody else.
package users
