package notifications

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

// deadLetters maps webhooks onto the dead letters of their delivery
// consumers; messaging owns the dead letters' layout, reading and replay.
type deadLetters struct {
	dl  *messaging.DeadLetters
	pub *messaging.Publisher
	reg *registry
}

// query selects the dead letters of webhook id, or of every webhook when
// id is "".
func query(id string) messaging.DeadLetterQuery {
	q := messaging.DeadLetterQuery{Stream: contract.Stream}
	if id != "" {
		q.Consumer = contract.Consumer(id)
	}
	return q
}

// list returns up to limit dead letters after sequence after, of webhook
// id or of all webhooks when id is "", and the cursor of the next page (0
// on the last).
func (d deadLetters) list(ctx context.Context, id string, after uint64, limit int) ([]contract.DeadLetter, uint64, error) {
	page, next, err := d.dl.List(ctx, query(id), after, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]contract.DeadLetter, 0, len(page))
	for _, m := range page {
		out = append(out, toDeadLetter(m))
	}
	return out, next, nil
}

func toDeadLetter(m messaging.DeadLetter) contract.DeadLetter {
	var t contract.Task
	_ = json.Unmarshal(m.Data, &t) // a foreign payload lists with what its headers say
	return contract.DeadLetter{
		ID:           m.Seq,
		WebhookID:    firstOf(t.WebhookID, contract.WebhookOf(m.Consumer)),
		EventID:      t.EventID,
		EventType:    firstOf(t.EventType, m.Header.Get(wire.HeaderEventType)),
		EventSubject: t.EventSubject,
		Reason:       m.Reason,
		Error:        m.Error,
		Deliveries:   m.Deliveries,
		Time:         m.Time,
	}
}

// resubmit queues the task of a dead letter again, under a new id so that
// de-duplication does not drop it.
func (d deadLetters) resubmit(ctx context.Context, m messaging.DeadLetter) error {
	var t contract.Task
	if err := json.Unmarshal(m.Data, &t); err != nil || !contract.ValidID(t.WebhookID) {
		return fmt.Errorf("dead letter %d: %w", m.Seq, ErrNoTask)
	}
	if _, ok := d.reg.get(t.WebhookID); !ok {
		return fmt.Errorf("webhook %q of dead letter %d no longer exists, put it again first: %w", t.WebhookID, m.Seq, ErrWebhookNotFound)
	}
	_, err := d.pub.Publish(ctx, messaging.OutEvent{
		Subject: contract.DeliverySubject(t.WebhookID),
		Type:    t.EventType,
		ID:      t.WebhookID + ":" + t.EventID + ":replay:" + strconv.FormatUint(m.Seq, 10),
		Data:    json.RawMessage(m.Data),
	})
	return err
}

// replay delivers dead letter seq again and removes it from the list. A
// replay that fails again is dead-lettered again, under a new sequence.
func (d deadLetters) replay(ctx context.Context, seq uint64) error {
	return d.dl.Replay(ctx, query(""), seq, d.resubmit)
}

// replayAll replays every dead letter webhook id has now; those its
// replays cause are not replayed again.
func (d deadLetters) replayAll(ctx context.Context, id string) (int, error) {
	if _, ok := d.reg.get(id); !ok {
		return 0, fmt.Errorf("webhook %q: %w", id, ErrWebhookNotFound)
	}
	n, err := d.dl.ReplayAll(ctx, query(id), d.resubmit)
	if err != nil {
		return n, fmt.Errorf("replayed %d: %w", n, err)
	}
	return n, nil
}
