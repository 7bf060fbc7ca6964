package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/telemetry"
)

// cancelUserDeleted is the cancel reason of the orders of a deleted user.
const cancelUserDeleted = "user deleted"

// UserEventsConsumer is the durable consumer of users.events that cancels a
// deleted user's open orders.
const UserEventsConsumer = "orders-on-user-events"

// onUserEvent cancels the open orders of a deleted user. It is idempotent:
// a redelivered user.deleted finds those orders cancelled already and
// changes nothing.
func onUserEvent(s *store) func(context.Context, messaging.Event[users.Event]) error {
	return func(ctx context.Context, ev messaging.Event[users.Event]) error {
		if ev.Data.Type != users.EventDeleted {
			return nil
		}
		userID := ev.Data.User.ID
		log := messaging.LoggerFrom(ctx).With(slog.String("user_id", userID))
		cancelled := 0
		after := ""
		for {
			page, next, err := s.list(ctx, userID, after, contract.MaxLimit, 0)
			if err != nil {
				return err // transient: retried with backoff
			}
			for _, o := range page {
				if o.Status != contract.StatusPlaced {
					continue
				}
				_, err := s.cancel(ctx, o.ID, 0, cancelUserDeleted)
				if errors.Is(err, ErrAlreadyCancelled) || errors.Is(err, eventstore.ErrStale) {
					continue // cancelled meanwhile (by a person, or by an earlier delivery)
				}
				if err != nil {
					return fmt.Errorf("cancel order %s: %w", o.ID, err)
				}
				cancelled++
			}
			if next == "" {
				break
			}
			after = next
		}
		log.Info("user deleted: open orders cancelled", slog.Int("cancelled", cancelled))
		return nil
	}
}

func consumeUserEvents(ctx context.Context, js jetstream.JetStream, s *store, logger *slog.Logger, tel *telemetry.Telemetry, repl messaging.Replication) (*messaging.Consumer, error) {
	return messaging.Consume(ctx, js, messaging.ConsumerConfig{
		Stream:         users.Stream,
		Durable:        UserEventsConsumer,
		Description:    "orders: cancels the open orders of deleted users",
		FilterSubjects: []string{users.EventSubjects},
		Logger:         logger,
		Telemetry:      tel,
		Replication:    repl,
	}, onUserEvent(s))
}
