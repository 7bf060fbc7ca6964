package users

import (
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/users/contract"
)

// Access is what the users service does on NATS, from which its NATS
// user's permissions are derived (docs/security.md): it alone writes the
// USERS stream, so it alone can publish users.events.>.
func Access() natsauth.Grant {
	return Entity().Grant(natsauth.Grant{
		User:        contract.ServiceName,
		Description: "the users service",
		Service:     contract.ServiceName,
		Serves: []string{
			contract.SubjectCreate, contract.SubjectGet, contract.SubjectUpdate,
			contract.SubjectDelete, contract.SubjectList, contract.ServiceName + ".consumers",
		},
	})
}
