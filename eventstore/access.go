package eventstore

import "github.com/devloop/switchboard/natsauth"

// Grant adds what a store of c does on NATS to g, the grant of the
// service that owns it: the stream, with every subject the store writes
// (events, fences, its internal records), read with its change feeds, and
// the durable consumer that keeps the shared cache current.
func (c Config[T]) Grant(g natsauth.Grant) natsauth.Grant {
	s := c.streamConfig()
	g.Streams = append(g.Streams, natsauth.Stream{Name: s.Name, Subjects: s.Subjects})
	g.Consumers = append(g.Consumers, natsauth.Consumer{Stream: s.Name, Durable: c.invalidator()})
	return g
}
