package projector

import (
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/projector/contract"
)

// Access is what the projector does on NATS, from which its NATS user's
// permissions are derived (docs/security.md): its durable consumers on
// USERS and ORDERS, which a rebuild deletes and recreates, the ordered
// consumers a rebuild replays those streams with, and its endpoints.
func Access() natsauth.Grant {
	g := natsauth.Grant{
		User:        contract.ServiceName,
		Description: "the projector (PostgreSQL query tables)",
		Service:     contract.ServiceName,
		Serves:      []string{contract.SubjectUsersSearch, contract.SubjectOrdersSearch, contract.SubjectStatus, contract.ServiceName + ".consumers"},
	}
	for _, s := range specs() {
		g.Consumers = append(g.Consumers, natsauth.Consumer{Stream: s.stream, Durable: s.durable, Delete: true})
		g.Reads = append(g.Reads, s.stream)
	}
	return g
}
