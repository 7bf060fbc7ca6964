// Package natsauth turns what each Switchboard identity does on NATS into
// the permissions a nats-server enforces, and renders them as server
// configuration.
//
// A [Grant] says what one identity does, in the terms of the code that
// does it: the streams and buckets it owns, the durable consumers it runs
// on other streams, the endpoints it serves and calls, the streams it
// reads. [Model.Permissions] derives the exact publish and subscribe
// allow-lists from that, one mechanism for every identity, so that adding
// a consumer to a service is one line in that service's grant, and the
// service's own tests, which run under these permissions, fail when the
// line is missing. [Model.Accounts] renders the accounts block of a
// nats-server configuration with one nkey user per identity; the embedded
// server of `switchboard dev` and the production configuration that
// `switchboard nats-config` writes use the same text.
//
// Every identity connects with an inbox prefix of its own
// ([InboxPrefix]) and may subscribe under no other, so that the first
// token of a request's reply subject names the NATS user that sent it
// (messaging.Request.Caller).
package natsauth
