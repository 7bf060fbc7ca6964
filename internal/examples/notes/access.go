package notes

import (
	"github.com/devloop/switchboard/internal/examples/notes/contract"
	"github.com/devloop/switchboard/natsauth"
)

// Access is what the notes service does on NATS, from which its NATS
// user's permissions are derived (docs/security.md): it serves its
// endpoints and alone writes the NOTES stream; the store adds what it
// needs for that stream (its events, claims, fences and consumers).
func Access() natsauth.Grant {
	return entity().Grant(natsauth.Grant{
		User:        contract.ServiceName,
		Description: "the notes example service",
		Service:     contract.ServiceName,
		Serves: []string{
			contract.SubjectCreate, contract.SubjectGet, contract.SubjectUpdate,
			contract.ServiceName + ".consumers", // the consumers endpoint every service with consumers has
		},
	})
}
