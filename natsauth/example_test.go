package natsauth_test

import (
	"fmt"
	"slices"

	"github.com/devloop/switchboard/natsauth"
)

// A service's grant says what it does; the model derives what its NATS
// user may publish and subscribe to, and keeps the others out.
func ExampleModel_Permissions() {
	billing := natsauth.Grant{
		User:    "billing",
		Service: "billing",
		Serves:  []string{"billing.charge"},
		Streams: []natsauth.Stream{{Name: "BILLING", Subjects: []string{"billing.events.>"}}},
	}
	m := natsauth.NewModel(billing)
	p, c := m.Permissions("billing"), m.Permissions(natsauth.ClientUser)
	fmt.Println("billing reads its inbox:", slices.Contains(p.Subscribe, "_INBOX_billing.>"))
	fmt.Println("billing writes its events:", slices.Contains(p.Publish, "billing.events.>"))
	fmt.Println("the client calls billing.charge:", slices.Contains(c.Publish, "billing.charge"))
	fmt.Println("the client writes billing's events:", slices.Contains(c.Publish, "billing.events.>"))
	fmt.Println("the client is kept from billing's inbox:", slices.Contains(c.SubscribeDeny, "_INBOX_billing.>"))
	// Output:
	// billing reads its inbox: true
	// billing writes its events: true
	// the client calls billing.charge: true
	// the client writes billing's events: false
	// the client is kept from billing's inbox: true
}
