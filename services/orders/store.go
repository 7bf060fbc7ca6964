package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/services/orders/contract"
)

// Domain errors of the orders store; endpoints.go maps them onto wire
// codes. A write at a version the order is no longer at is an
// *eventstore.VersionError (eventstore.ErrStale).
var (
	ErrNotFound         = errors.New("order not found")
	ErrAlreadyCancelled = errors.New("order already cancelled")
	ErrNoSuchUser       = errors.New("no such user")
	ErrUsersUnavailable = errors.New("users service unavailable")
)

// entity is the layout of orders in the event store: events on
// orders.events.<id>.<kind>, listed per user.
func entity() eventstore.Config[contract.Order] {
	return eventstore.Config[contract.Order]{
		Stream: eventstore.EventStream(contract.Stream,
			"Orders service events; the last message on orders.events.<id>.* is the order's state.",
			contract.EventSubjects),
		EventFilter:  contract.EventSubjects,
		Internal:     contract.InternalSubjectPrefix,
		EventSubject: contract.EventSubject,
		EntityFilter: contract.OrderSubjects,
		IDOf: func(subject string) string {
			// orders.events.<id>.<kind> or orders.fence.<id>.f
			tokens := strings.Split(subject, ".")
			if len(tokens) != 4 {
				return ""
			}
			return tokens[2]
		},
		FenceSubjects: contract.FenceSubjects,
		FenceSubject:  func(id string) string { return "orders.fence." + id + ".f" },
		WriteFilter:   func(id string) string { return "orders.*." + id + ".*" },
		WithKey:       func(o contract.Order, id string) contract.Order { o.ID = id; return o },
		Encode: func(typ, eventID string, _ time.Time, o contract.Order) any {
			return contract.Event{Type: typ, ID: eventID, OccurredAt: o.UpdatedAt, Order: o}
		},
		Decode: func(data []byte) (string, contract.Order, error) {
			var ev contract.Event
			err := json.Unmarshal(data, &ev)
			return ev.Type, ev.Order, err
		},
		Key:     func(o contract.Order) string { return o.ID },
		Version: func(o contract.Order) int64 { return o.Version },
		Ends:    func(string) bool { return false },
		Listing: func(o contract.Order) string { return o.UserID },
	}
}

// store holds the orders' rules: what placing and cancelling write. The
// event store does the rest.
type store struct {
	es  *eventstore.Store[contract.Order]
	now func() time.Time
}

func (s *store) get(ctx context.Context, id string) (eventstore.Record[contract.Order], error) {
	rec, err := s.es.Get(ctx, id)
	if errors.Is(err, eventstore.ErrNotFound) {
		return rec, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	return rec, err
}

// place stores order.placed for a new order of a checked request.
func (s *store) place(ctx context.Context, req contract.CreateRequest, idem *eventstore.Idempotency) (eventstore.Record[contract.Order], error) {
	now := s.now().UTC()
	o := contract.Order{
		ID: ulid.Make().String(), UserID: req.UserID, Items: req.Items, Currency: req.Currency,
		TotalCents: contract.Total(req.Items), Status: contract.StatusPlaced,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	return s.es.Create(ctx, o.ID, eventstore.Change[contract.Order]{Type: contract.EventPlaced, State: o}, idem)
}

// cancel stores order.cancelled if the order is placed and at version
// (version 0: whatever its version).
func (s *store) cancel(ctx context.Context, id string, version int64, reason string) (eventstore.Record[contract.Order], error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return cur, err
	}
	o := cur.State
	if version > 0 && o.Version != version {
		return cur, &eventstore.VersionError{Entity: "order", Got: version, Current: o.Version}
	}
	if o.Status == contract.StatusCancelled {
		return cur, fmt.Errorf("order %s: %w", id, ErrAlreadyCancelled)
	}
	o.Status = contract.StatusCancelled
	o.CancelReason = strings.TrimSpace(reason)
	o.Version++
	o.UpdatedAt = s.now().UTC()
	rec, err := s.es.Append(ctx, cur, eventstore.Change[contract.Order]{Type: contract.EventCancelled, State: o})
	if errors.Is(err, eventstore.ErrStale) {
		return rec, &eventstore.VersionError{Entity: "order", Got: version}
	}
	return rec, err
}

// list pages through one user's orders in creation order.
func (s *store) list(ctx context.Context, userID, after string, limit, maxBytes int) ([]contract.Order, string, error) {
	page, err := s.es.List(ctx, eventstore.Query{Listing: userID, After: after, Limit: limit, MaxBytes: maxBytes})
	if err != nil {
		return nil, "", err
	}
	orders := make([]contract.Order, 0, len(page.Records))
	for _, r := range page.Records {
		orders = append(orders, r.State)
	}
	return orders, page.Next, nil
}
