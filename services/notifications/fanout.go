package notifications

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/telemetry"
)

// The durable consumers that fan events out into delivery tasks.
const (
	UsersFanOutConsumer  = "notifications-users"
	OrdersFanOutConsumer = "notifications-orders"
)

// eventHead is what the fan-out reads of an event; the rest travels as is.
type eventHead struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
}

// fanOut publishes one delivery task per webhook matching the event's
// subject. Its Nats-Msg-Id, "<webhook id>:<event id>", makes a redelivered
// event publish no second task (within the stream's duplicate window).
func fanOut(reg *registry, pub *messaging.Publisher) func(context.Context, messaging.Event[eventHead]) error {
	return func(ctx context.Context, ev messaging.Event[eventHead]) error {
		hooks := reg.matching(ev.Subject)
		if len(hooks) == 0 {
			return nil
		}
		t := contract.Task{
			EventSubject: ev.Subject,
			EventType:    firstOf(ev.EventType, ev.Data.Type),
			EventID:      firstOf(ev.Data.ID, ev.EventID),
			EventTime:    ev.Data.OccurredAt,
			Event:        ev.Payload,
		}
		if t.EventTime.IsZero() {
			t.EventTime = ev.Time
		}
		for _, h := range hooks {
			t.WebhookID = h.ID
			_, err := pub.Publish(ctx, messaging.OutEvent{
				Subject: contract.DeliverySubject(h.ID),
				Type:    t.EventType,
				ID:      h.ID + ":" + t.EventID,
				Data:    t,
			})
			if err != nil {
				return fmt.Errorf("task for webhook %q: %w", h.ID, err) // retried; published tasks are de-duplicated
			}
		}
		messaging.LoggerFrom(ctx).Debug("event fanned out", slog.Int("webhooks", len(hooks)))
		return nil
	}
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// consumeEvents starts the fan-out consumers of the users and orders
// streams. They take new events only: a webhook is not sent the history
// that came before the service first ran.
func consumeEvents(ctx context.Context, js jetstream.JetStream, reg *registry, pub *messaging.Publisher, logger *slog.Logger, tel *telemetry.Telemetry, repl messaging.Replication) ([]*messaging.Consumer, error) {
	specs := []struct{ stream, durable, filter string }{
		{users.Stream, UsersFanOutConsumer, users.EventSubjects},
		{orders.Stream, OrdersFanOutConsumer, orders.EventSubjects},
	}
	var cs []*messaging.Consumer
	for _, s := range specs {
		c, err := messaging.Consume(ctx, js, messaging.ConsumerConfig{
			Stream:         s.stream,
			Durable:        s.durable,
			Description:    "notifications: turns events into webhook delivery tasks",
			FilterSubjects: []string{s.filter},
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			Logger:         logger,
			Telemetry:      tel,
			Replication:    repl,
		}, fanOut(reg, pub))
		if err != nil {
			for _, c := range cs {
				_ = c.Stop(ctx)
			}
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}
