// Package embedded runs a nats-server with JetStream inside the current
// process.
//
// It backs `switchboard dev`, which runs the whole system in one process, and
// every integration test. [Start] returns once the server accepts connections
// and JetStream is enabled; services in the same process then connect through
// [Server.ConnectOption] (an in-memory pipe, no TCP), while tools such as the
// nats CLI connect over TCP to [Server.ClientURL].
//
// [Options.Config] runs nats-server configuration text, such as the
// accounts natsauth renders: `switchboard dev` runs the same authorization
// model as production that way.
//
// The server never exits the process: nats-server reports fatal start-up
// errors through its logger, and this package turns them into errors returned
// by Start. A port already in use is reported as [ErrAddrInUse], and a store
// directory held by another server (in this or another process) as
// [ErrStoreLocked], so a second `switchboard dev` fails at once with a clear
// message instead of hanging or corrupting the first one's data.
package embedded
