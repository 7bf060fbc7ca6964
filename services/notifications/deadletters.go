package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

// deadLetterPrefix is the subject prefix of this service's dead letters:
// deadletter.NOTIFICATIONS.webhook-<id>.
const deadLetterPrefix = messaging.DeadLetterSubjectPrefix + contract.Stream + ".webhook-"

// deadLetters reads and replays the dead letters of webhook deliveries.
type deadLetters struct {
	js  jetstream.JetStream
	pub *messaging.Publisher
	reg *registry
}

func (d deadLetters) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := d.js.Stream(ctx, messaging.DefaultDeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	return s, nil
}

// list returns up to limit dead letters after sequence after, of webhook
// id or of all webhooks when id is "", and the cursor of the next page (0
// on the last).
func (d deadLetters) list(ctx context.Context, id string, after uint64, limit int) ([]contract.DeadLetter, uint64, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return nil, 0, err
	}
	filter := messaging.DeadLetterSubjectPrefix + contract.Stream + ".>"
	if id != "" {
		filter = deadLetterPrefix + id
	}
	out := []contract.DeadLetter{}
	seq := after + 1
	for {
		msg, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read dead letter after %d: %w", seq-1, err)
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil // there is more
		}
		out = append(out, toDeadLetter(msg))
		seq = msg.Sequence + 1
	}
}

func toDeadLetter(m *jetstream.RawStreamMsg) contract.DeadLetter {
	var t contract.Task
	_ = json.Unmarshal(m.Data, &t) // a foreign payload lists with what its headers say
	n, _ := strconv.Atoi(m.Header.Get(messaging.HeaderDeadLetterDeliveries))
	return contract.DeadLetter{
		ID:           m.Sequence,
		WebhookID:    firstOf(t.WebhookID, strings.TrimPrefix(m.Subject, deadLetterPrefix)),
		EventID:      t.EventID,
		EventType:    firstOf(t.EventType, m.Header.Get(wire.HeaderEventType)),
		EventSubject: t.EventSubject,
		Reason:       m.Header.Get(messaging.HeaderDeadLetterReason),
		Error:        m.Header.Get(messaging.HeaderDeadLetterError),
		Deliveries:   n,
		Time:         m.Time,
	}
}

// replay publishes the task of dead letter seq again, under a new id so
// that de-duplication does not drop it, then deletes the dead letter. A
// replay that fails again is dead-lettered again, under a new sequence.
func (d deadLetters) replay(ctx context.Context, seq uint64) error {
	s, err := d.stream(ctx)
	if err != nil {
		return err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !strings.HasPrefix(m.Subject, deadLetterPrefix) {
		return wire.Errorf(wire.CodeNotFound, "no webhook dead letter %d", seq)
	}
	if err != nil {
		return fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	var t contract.Task
	if err := json.Unmarshal(m.Data, &t); err != nil || !contract.ValidID(t.WebhookID) {
		return wire.Errorf(wire.CodeConflict, "dead letter %d holds no delivery task", seq)
	}
	if _, ok := d.reg.get(t.WebhookID); !ok {
		return wire.Errorf(wire.CodeNotFound, "webhook %q of dead letter %d no longer exists; put it again first", t.WebhookID, seq)
	}
	if _, err := d.pub.Publish(ctx, messaging.OutEvent{
		Subject: contract.DeliverySubject(t.WebhookID),
		Type:    t.EventType,
		ID:      t.WebhookID + ":" + t.EventID + ":replay:" + strconv.FormatUint(seq, 10),
		Data:    json.RawMessage(m.Data),
	}); err != nil {
		return fmt.Errorf("replay dead letter %d: %w", seq, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		// Replayed all the same; replaying it again is de-duplicated.
		return fmt.Errorf("replayed dead letter %d, but deleting it failed: %w", seq, err)
	}
	return nil
}

// replayAll replays every dead letter of webhook id.
func (d deadLetters) replayAll(ctx context.Context, id string) (int, error) {
	if _, ok := d.reg.get(id); !ok {
		return 0, wire.Errorf(wire.CodeNotFound, "webhook %q not found", id)
	}
	n := 0
	var after uint64
	for {
		page, next, err := d.list(ctx, id, after, contract.MaxLimit)
		if err != nil {
			return n, err
		}
		for _, dl := range page {
			if err := d.replay(ctx, dl.ID); err != nil {
				return n, err
			}
			n++
		}
		if next == 0 {
			return n, nil
		}
		after = next
	}
}
