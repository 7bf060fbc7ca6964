package orders

import (
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
)

// Access is what the orders service does on NATS, from which its NATS
// user's permissions are derived (docs/security.md): it owns ORDERS,
// follows users' events with its durable consumer, calls users.get and
// reads a user's last event from USERS.
func Access() natsauth.Grant {
	return entity().Grant(natsauth.Grant{
		User:        contract.ServiceName,
		Description: "the orders service",
		Service:     contract.ServiceName,
		Serves: []string{
			contract.SubjectCreate, contract.SubjectGet, contract.SubjectList,
			contract.SubjectCancel, contract.ServiceName + ".consumers",
		},
		Calls:     []string{users.SubjectGet},
		Consumers: []natsauth.Consumer{{Stream: users.Stream, Durable: UserEventsConsumer}},
		Gets:      []string{users.Stream},
	})
}
