package orders_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/services/orders/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// fetchAll reads every message of the ORDERS stream that filter matches,
// in stream order.
func fetchAll(t *testing.T, e *env, filter string) []jetstream.Msg {
	t.Helper()
	ctx := t.Context()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, contract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.NumPending)
	if n == 0 {
		return nil
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("fetched %d messages on %s, want the %d pending", len(msgs), filter, n)
	}
	return msgs
}

func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	ctx := wire.WithRequestID(t.Context(), "checkout-request-1")
	placed, err := create(ctx, e.client, order(ada.ID))
	if err != nil {
		t.Fatal(err)
	}
	other := mustCreate(t, e.client, order(ada.ID)) // events on other subjects
	cancelled := mustCancel(t, e.client, contract.CancelRequest{ID: placed.ID, Version: 1, Reason: "too slow"})

	msgs := fetchAll(t, e, contract.OrderSubjects(placed.ID))
	tests := []struct {
		wantSubject     string
		wantType        string
		wantOrder       contract.Order
		wantOrderFields []string
		wantRequestID   string // "": not checked
	}{
		{
			wantSubject:     "orders.events." + placed.ID + ".placed",
			wantType:        contract.EventPlaced,
			wantOrder:       placed,
			wantOrderFields: []string{"created_at", "currency", "id", "items", "status", "total_cents", "updated_at", "user_id", "version"},
			wantRequestID:   "checkout-request-1",
		},
		{
			wantSubject:     "orders.events." + placed.ID + ".cancelled",
			wantType:        contract.EventCancelled,
			wantOrder:       cancelled,
			wantOrderFields: []string{"cancel_reason", "created_at", "currency", "id", "items", "status", "total_cents", "updated_at", "user_id", "version"},
		},
	}
	if len(msgs) != len(tests) {
		t.Fatalf("%d events of order %s, want %d", len(msgs), placed.ID, len(tests))
	}
	seen := map[string]bool{}
	for i, tc := range tests {
		t.Run(tc.wantType, func(t *testing.T) {
			m := msgs[i]
			if m.Subject() != tc.wantSubject {
				t.Errorf("subject = %s, want %s", m.Subject(), tc.wantSubject)
			}
			h := m.Headers()
			if got := h.Get(wire.HeaderEventType); got != tc.wantType {
				t.Errorf("%s = %q, want %q", wire.HeaderEventType, got, tc.wantType)
			}
			eventID := h.Get(wire.HeaderEventID)
			if !userscontract.ValidID(eventID) || eventID != h.Get(jetstream.MsgIDHeader) {
				t.Errorf("%s = %q, %s = %q: want one ULID", wire.HeaderEventID, eventID, jetstream.MsgIDHeader, h.Get(jetstream.MsgIDHeader))
			}
			if seen[eventID] {
				t.Errorf("event id %s used twice", eventID)
			}
			seen[eventID] = true
			if got, want := h.Get(wire.HeaderVersion), strconv.Itoa(i+1); got != want {
				t.Errorf("%s = %q, want %q", wire.HeaderVersion, got, want)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if tc.wantRequestID != "" && h.Get(wire.HeaderRequestID) != tc.wantRequestID {
				t.Errorf("%s = %q, want the creating request's %q", wire.HeaderRequestID, h.Get(wire.HeaderRequestID), tc.wantRequestID)
			}

			var fields map[string]json.RawMessage
			if err := json.Unmarshal(m.Data(), &fields); err != nil {
				t.Fatalf("payload %s: %v", m.Data(), err)
			}
			if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, []string{"id", "occurred_at", "order", "type"}) {
				t.Errorf("payload fields = %q, want id, occurred_at, order, type", got)
			}
			var orderFields map[string]json.RawMessage
			if err := json.Unmarshal(fields["order"], &orderFields); err != nil {
				t.Fatalf("order %s: %v", fields["order"], err)
			}
			if got := slices.Sorted(maps.Keys(orderFields)); !slices.Equal(got, tc.wantOrderFields) {
				t.Errorf("order fields = %q, want %q", got, tc.wantOrderFields)
			}

			var ev contract.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != tc.wantType || ev.ID != eventID {
				t.Errorf("type, id = %q, %q; want %q, %q (as in the headers)", ev.Type, ev.ID, tc.wantType, eventID)
			}
			if !ev.OccurredAt.Equal(ev.Order.UpdatedAt) {
				t.Errorf("occurred_at %v != order.updated_at %v", ev.OccurredAt, ev.Order.UpdatedAt)
			}
			if !reflect.DeepEqual(ev.Order, tc.wantOrder) {
				t.Errorf("order = %+v, want %+v", ev.Order, tc.wantOrder)
			}
		})
	}

	t.Run("placed only", func(t *testing.T) {
		placedOnly := fetchAll(t, e, contract.EventSubjectPrefix+"*.placed")
		var got []string
		for _, m := range placedOnly {
			if !strings.HasSuffix(m.Subject(), ".placed") || m.Headers().Get(wire.HeaderEventType) != contract.EventPlaced {
				t.Errorf("%s (%s) delivered to a consumer of placed events", m.Subject(), m.Headers().Get(wire.HeaderEventType))
			}
			var ev contract.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Order.ID)
		}
		if want := []string{placed.ID, other.ID}; !slices.Equal(got, want) {
			t.Errorf("placed events of orders %q, want %q", got, want)
		}
	})
}

// TestStreamSubjects checks that ORDERS holds only events: no stream may
// capture the request subjects, or JetStream would answer requests.
func TestStreamSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), contract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{contract.EventSubjects, contract.FenceSubjects, contract.InternalSubjectPrefix + ".>"}
	if got := stream.CachedInfo().Config.Subjects; !slices.Equal(got, want) {
		t.Errorf("ORDERS subjects = %q, want %q", got, want)
	}
	for _, subject := range []string{contract.SubjectCreate, contract.SubjectGet, contract.SubjectList, contract.SubjectCancel, "orders.consumers"} {
		if name, err := js.StreamNameBySubject(t.Context(), subject); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream for %s = %q, %v; want none", subject, name, err)
		}
	}
}
