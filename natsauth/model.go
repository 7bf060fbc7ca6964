package natsauth

import (
	"path/filepath"

	"github.com/devloop/switchboard/messaging"
)

// The roles every model has beside its services.
const (
	// ClientUser is the read-only role for the nats CLI and your own
	// consumers: it discovers and calls every endpoint and reads the
	// services' streams and the dead letters, but publishes no event,
	// purges nothing and reads no bucket.
	ClientUser = "client"
	// OperatorUser is for people running the system: it manages streams
	// and consumers (edit, purge where allowed, delete) besides what the
	// client does, still without publishing events or reading buckets.
	OperatorUser = "operator"
)

// Endpoints are the subjects every grant serves, in order.
func Endpoints(grants ...Grant) []string {
	var out []string
	for _, g := range grants {
		out = append(out, g.Serves...)
	}
	return dedupe(out)
}

// NewModel is the model of services in DefaultAccount with the client and
// operator roles added: both call every endpoint the services serve and
// read the streams they own (not their buckets) and the dead letters.
func NewModel(services ...Grant) Model {
	calls := Endpoints(services...)
	var streams []string
	for _, g := range services {
		for _, s := range g.Streams {
			streams = append(streams, s.Name)
		}
	}
	streams = append(streams, messaging.DefaultDeadLetterStream)
	grants := append([]Grant(nil), services...)
	grants = append(grants,
		Grant{User: ClientUser, Inbox: ClientInbox, Description: "read-only role: the nats CLI, your own consumers",
			Discovers: true, Calls: calls, Reads: streams},
		Grant{User: OperatorUser, Description: "people running the system: manage streams and consumers",
			Discovers: true, Calls: calls, Reads: streams, DeadLetters: true, Admin: true},
	)
	return Model{Account: DefaultAccount, Grants: grants}
}

// KeyDir is where the keys of a data directory's embedded server live,
// one KeyFile per identity: `switchboard dev` keeps them there, and so do
// tests that run a server with a model.
func KeyDir(dataDir string) string { return filepath.Join(dataDir, "nats") }
