package users_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	other := mustCreate(t, e.client, "Alan", "alan@example.com", 41) // events on another subject
	created := mustCreate(t, e.client, "Ada", "ada@example.com", 36)
	updated := mustUpdate(t, e.client, contract.UpdateRequest{ID: created.ID, Version: 1, Name: ptr("Countess"), Age: ptr(37)})
	mustDelete(t, e.client, created.ID, 2)
	mustUpdate(t, e.client, contract.UpdateRequest{ID: other.ID, Version: 1, Age: ptr(42)})

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, contract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	subject := contract.EventSubjectPrefix + created.ID
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 3 {
		t.Fatalf("%s holds %d messages, want 3", subject, n)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
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
	if len(msgs) != 3 {
		t.Fatalf("fetched %d events on %s, want 3", len(msgs), subject)
	}

	deleted := updated
	deleted.Version = 3
	tests := []struct {
		wantType string
		wantUser contract.User // UpdatedAt of the deleted state is checked apart
	}{
		{wantType: contract.EventCreated, wantUser: created},
		{wantType: contract.EventUpdated, wantUser: updated},
		{wantType: contract.EventDeleted, wantUser: deleted},
	}
	seen := map[string]bool{}
	for i, tc := range tests {
		t.Run(tc.wantType, func(t *testing.T) {
			m := msgs[i]
			h := m.Headers()
			if got := h.Get(wire.HeaderEventType); got != tc.wantType {
				t.Errorf("%s = %q, want %q", wire.HeaderEventType, got, tc.wantType)
			}
			eventID := h.Get(wire.HeaderEventID)
			if !contract.ValidID(eventID) || eventID != h.Get(jetstream.MsgIDHeader) {
				t.Errorf("%s = %q, %s = %q: want one ULID", wire.HeaderEventID, eventID, jetstream.MsgIDHeader, h.Get(jetstream.MsgIDHeader))
			}
			if seen[eventID] {
				t.Errorf("event id %s used twice", eventID)
			}
			seen[eventID] = true
			if got, want := h.Get(wire.HeaderVersion), strconv.Itoa(i+1); got != want {
				t.Errorf("%s = %q, want %q", wire.HeaderVersion, got, want)
			}

			var fields map[string]json.RawMessage
			if err := json.Unmarshal(m.Data(), &fields); err != nil {
				t.Fatalf("payload %s: %v", m.Data(), err)
			}
			if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, []string{"id", "occurred_at", "type", "user"}) {
				t.Errorf("payload fields = %q, want id, occurred_at, type, user", got)
			}
			var userFields map[string]json.RawMessage
			if err := json.Unmarshal(fields["user"], &userFields); err != nil {
				t.Fatalf("user %s: %v", fields["user"], err)
			}
			if got := slices.Sorted(maps.Keys(userFields)); !slices.Equal(got, []string{"age", "created_at", "email", "id", "name", "updated_at", "version"}) {
				t.Errorf("user fields = %q, want the full state", got)
			}

			var ev contract.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != tc.wantType || ev.ID != eventID {
				t.Errorf("type, id = %q, %q; want %q, %q (as in the headers)", ev.Type, ev.ID, tc.wantType, eventID)
			}
			if !ev.OccurredAt.Equal(ev.User.UpdatedAt) {
				t.Errorf("occurred_at %v != user.updated_at %v", ev.OccurredAt, ev.User.UpdatedAt)
			}
			want := tc.wantUser
			if tc.wantType == contract.EventDeleted {
				if ev.User.UpdatedAt.Before(updated.UpdatedAt) {
					t.Errorf("deleted at %v, before the update at %v", ev.User.UpdatedAt, updated.UpdatedAt)
				}
				want.UpdatedAt = ev.User.UpdatedAt
			}
			if ev.User != want {
				t.Errorf("user = %+v, want %+v", ev.User, want)
			}
		})
	}
}

// TestStreamSubjects checks that USERS holds only events: no stream may
// capture the request subjects, or JetStream would answer requests.
func TestStreamSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	// Declaring streams is the operator's.
	js, err := jetstream.New(connect(t, e.srv, "operator"))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, contract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"users.events.*", "users.fence.*", "users.internal.>"}) {
		t.Errorf("USERS subjects = %q, want [users.events.* users.fence.* users.internal.>]", got)
	}
	requests := []string{contract.SubjectCreate, contract.SubjectGet, contract.SubjectUpdate, contract.SubjectDelete, contract.SubjectList}
	for _, subject := range requests {
		if name, err := js.StreamNameBySubject(ctx, subject); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream for %s = %q, %v; want none", subject, name, err)
		}
	}
	// JetStream refuses a stream whose subjects overlap another's, so this
	// succeeds only if nothing captures the request subjects.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: requests, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("create a stream on the request subjects: %v", err)
	}
	if err := js.DeleteStream(ctx, "PROBE"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OVERLAP", Subjects: []string{"users.events.>"}, Storage: jetstream.MemoryStorage}); err == nil {
		t.Errorf("a stream overlapping USERS was created; the probe above proves nothing")
	}
}
