package notifications

import (
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/notifications/contract"
	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
)

// Access is what the notifications service does on NATS, from which its
// NATS user's permissions are derived (docs/security.md): it owns the
// tasks stream and both buckets (nobody else reads the webhooks), fans
// users' and orders' events out with its durable consumers, runs one
// delivery consumer per webhook and lists and replays dead letters.
func Access() natsauth.Grant {
	return natsauth.Grant{
		User:        contract.ServiceName,
		Description: "the notifications service",
		Service:     contract.ServiceName,
		Serves: []string{
			contract.SubjectWebhooksList, contract.SubjectWebhooksPut, contract.SubjectWebhooksDelete,
			contract.SubjectDeadLettersList, contract.SubjectDeadLettersReplay, contract.ServiceName + ".consumers",
		},
		// A deleted webhook's queued tasks are purged.
		Streams: []natsauth.Stream{{Name: contract.Stream, Subjects: []string{contract.DeliverySubjectPrefix + ">"}, Purge: true}},
		Buckets: []string{contract.Bucket, contract.DeliveredBucket},
		Consumers: []natsauth.Consumer{
			{Stream: users.Stream, Durable: UsersFanOutConsumer},
			{Stream: orders.Stream, Durable: OrdersFanOutConsumer},
			{Stream: contract.Stream, Durable: "*"}, // webhook-<id>
		},
		DeadLetters: true,
	}
}
