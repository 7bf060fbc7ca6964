package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

// IdempotencyBucket maps an Idempotency-Key to the order its first create
// made; entries expire after IdempotencyTTL.
const (
	IdempotencyBucket = "ORDERS_IDEMPOTENCY"
	IdempotencyTTL    = 24 * time.Hour
)

// StreamConfig is the ORDERS stream's configuration.
func StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        contract.Stream,
		Description: "Orders service events; the last message on orders.events.<id>.* is the order's state.",
		Subjects:    []string{contract.EventSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		AllowDirect: true,
		DenyDelete:  true,
		Duplicates:  2 * time.Minute,
	}
}

// store keeps orders as events on the ORDERS stream.
type store struct {
	stream jetstream.Stream
	pub    *messaging.Publisher
	idem   *messaging.IdempotencyKeys
	view   *messaging.View[contract.Order]
	now    func() time.Time
}

func openStore(ctx context.Context, js jetstream.JetStream, pub *messaging.Publisher, logger *slog.Logger) (*store, error) {
	stream, err := messaging.EnsureStream(ctx, js, StreamConfig())
	if err != nil {
		return nil, err
	}
	idem, err := messaging.OpenIdempotencyKeys(ctx, js, IdempotencyBucket, IdempotencyTTL)
	if err != nil {
		return nil, err
	}
	view, err := messaging.StartView(ctx, stream, messaging.ViewConfig[contract.Order]{
		Filter: contract.EventSubjects,
		Logger: logger,
		Decode: func(msg jetstream.Msg) (string, contract.Order, bool, error) {
			ev, err := decodeEvent(msg.Data())
			return ev.Order.ID, ev.Order, true, err
		},
	})
	if err != nil {
		return nil, err
	}
	return &store{stream: stream, pub: pub, idem: idem, view: view, now: time.Now}, nil
}

func (s *store) close() { s.view.Stop() }

func decodeEvent(data []byte) (contract.Event, error) {
	var ev contract.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("decode order event: %w", err)
	}
	return ev, nil
}

func notFound(id string) error {
	return wire.NewError(wire.CodeNotFound, fmt.Sprintf("order %s not found", id))
}

// current returns the order and the stream sequence of its last event,
// read with one direct get of the last message on orders.events.<id>.*.
func (s *store) current(ctx context.Context, id string) (contract.Order, uint64, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, contract.OrderSubjects(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return contract.Order{}, 0, notFound(id)
	}
	if err != nil {
		return contract.Order{}, 0, fmt.Errorf("read order %s: %w", id, err)
	}
	ev, err := decodeEvent(msg.Data)
	if err != nil {
		return contract.Order{}, 0, fmt.Errorf("order %s at sequence %d: %w", id, msg.Sequence, err)
	}
	return ev.Order, msg.Sequence, nil
}

func (s *store) get(ctx context.Context, id string) (contract.Order, error) {
	o, _, err := s.current(ctx, id)
	return o, err
}

// place appends order.placed for a new order. With an idempotency key, a
// retry returns the order the first request placed.
func (s *store) place(ctx context.Context, req contract.CreateRequest, key string) (contract.Order, error) {
	id := ulid.Make().String()
	if key != "" {
		first, err := s.idem.Claim(ctx, key, id)
		if err != nil {
			return contract.Order{}, err
		}
		if first != id {
			if o, err := s.get(ctx, first); err == nil || !errors.Is(err, wire.ErrNotFound) {
				return o, err
			}
			id = first // the first attempt did not finish: finish it
		}
	}
	now := s.now().UTC()
	o := contract.Order{
		ID: id, UserID: req.UserID, Items: req.Items, Currency: req.Currency,
		TotalCents: contract.Total(req.Items), Status: contract.StatusPlaced,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.append(ctx, contract.EventPlaced, o, 0); err != nil {
		if errors.Is(err, wire.ErrConflict) && key != "" {
			return s.get(ctx, id) // a concurrent retry got there first
		}
		return contract.Order{}, err
	}
	return o, nil
}

// cancel appends order.cancelled if the order is placed and at version
// (version 0: whatever its version).
func (s *store) cancel(ctx context.Context, id string, version int64, reason string) (contract.Order, error) {
	o, seq, err := s.current(ctx, id)
	if err != nil {
		return contract.Order{}, err
	}
	if version > 0 && o.Version != version {
		return contract.Order{}, wire.NewError(wire.CodeConflict,
			fmt.Sprintf("version %d is stale: the order is at version %d", version, o.Version),
			wire.Detail{Field: "version", Message: fmt.Sprintf("current version is %d", o.Version)})
	}
	if o.Status == contract.StatusCancelled {
		return contract.Order{}, wire.NewError(wire.CodeConflict, fmt.Sprintf("order %s is already cancelled", id),
			wire.Detail{Field: "id", Message: "already cancelled"})
	}
	next := o
	next.Status = contract.StatusCancelled
	next.CancelReason = strings.TrimSpace(reason)
	next.Version++
	next.UpdatedAt = s.now().UTC()
	if err := s.append(ctx, contract.EventCancelled, next, seq); err != nil {
		if errors.Is(err, wire.ErrConflict) {
			return contract.Order{}, wire.NewError(wire.CodeConflict, "the order changed concurrently; read it again and retry",
				wire.Detail{Field: "version", Message: "read the order again"})
		}
		return contract.Order{}, err
	}
	return next, nil
}

// list pages through one user's orders, after syncing the view.
func (s *store) list(ctx context.Context, userID, after string, limit int) ([]contract.Order, string, error) {
	if err := s.view.Sync(ctx); err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	orders, next := s.view.Page(after, limit, func(o contract.Order) bool { return o.UserID == userID })
	return orders, next, nil
}

// append publishes one event of order o, conditional on the last sequence
// of the order's subjects being lastSeq (0: a new order).
func (s *store) append(ctx context.Context, typ string, o contract.Order, lastSeq uint64) error {
	ev := contract.Event{Type: typ, ID: ulid.Make().String(), OccurredAt: o.UpdatedAt, Order: o}
	_, err := s.pub.Publish(ctx, messaging.OutEvent{
		Subject: contract.EventSubject(o.ID, typ), Type: typ, ID: ev.ID, Version: o.Version, Data: ev,
	}, messaging.ExpectLastSequenceFor(contract.OrderSubjects(o.ID), lastSeq))
	return err
}
