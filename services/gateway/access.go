package gateway

import "github.com/devloop/switchboard/natsauth"

// User is the gateway's NATS user.
const User = "gateway"

// Access is what the gateway does on NATS, from which its NATS user's
// permissions are derived (docs/security.md): it discovers the services
// and calls endpoints, those named in calls (every endpoint of the
// system), on behalf of its HTTP callers.
func Access(calls []string) natsauth.Grant {
	return natsauth.Grant{
		User:        User,
		Description: "the HTTP gateway",
		Discovers:   true,
		Calls:       calls,
	}
}
