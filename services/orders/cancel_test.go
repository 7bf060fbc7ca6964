package orders_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

// eventCount returns how many events the ORDERS stream holds on subject.
func eventCount(t *testing.T, e *env, subject string) uint64 {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), contract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")

	placed := mustCreate(t, e.client, order(ada.ID))
	got := mustCancel(t, e.client, contract.CancelRequest{ID: placed.ID, Version: 1, Reason: "  changed my mind \n"})
	want := placed
	want.Status = contract.StatusCancelled
	want.Version = 2
	want.CancelReason = "changed my mind"
	if got.UpdatedAt.Before(placed.UpdatedAt) {
		t.Errorf("updated_at %v, before the creation at %v", got.UpdatedAt, placed.CreatedAt)
	}
	want.UpdatedAt = got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cancel = %+v, want %+v", got, want)
	}
	if read := mustGet(t, e.client, placed.ID); !reflect.DeepEqual(read, got) {
		t.Errorf("get after cancel = %+v, want %+v", read, got)
	}
	subject := contract.EventSubject(placed.ID, contract.EventCancelled)
	if n := eventCount(t, e, subject); n != 1 {
		t.Errorf("%s holds %d events, want 1", subject, n)
	}
}

func TestCancelRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")

	tests := []struct {
		name           string
		givenCancelled bool   // the order is cancelled (at version 2) first
		givenID        string // "": the order's id
		givenVersion   int64
		givenReason    string
		wantErr        error
		wantFields     []string
	}{
		{name: "already cancelled", givenCancelled: true, givenVersion: 2, wantErr: wire.ErrConflict, wantFields: []string{"id"}},
		{name: "already cancelled, stale version", givenCancelled: true, givenVersion: 1, wantErr: wire.ErrConflict, wantFields: []string{"version"}},
		{name: "version ahead", givenVersion: 2, wantErr: wire.ErrConflict, wantFields: []string{"version"}},
		{name: "unknown order", givenID: ulid.Make().String(), givenVersion: 1, wantErr: wire.ErrNotFound},
		{name: "version missing", givenVersion: 0, wantErr: wire.ErrBadRequest, wantFields: []string{"version"}},
		{name: "version negative", givenVersion: -1, wantErr: wire.ErrBadRequest, wantFields: []string{"version"}},
		{name: "reason too long", givenVersion: 1, givenReason: strings.Repeat("r", contract.MaxReasonChars+1), wantErr: wire.ErrBadRequest, wantFields: []string{"reason"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := mustCreate(t, e.client, order(ada.ID))
			if tc.givenCancelled {
				before = mustCancel(t, e.client, contract.CancelRequest{ID: before.ID, Version: 1, Reason: "first"})
			}
			id := tc.givenID
			if id == "" {
				id = before.ID
			}
			_, err := cancelOrder(t.Context(), e.client, contract.CancelRequest{ID: id, Version: tc.givenVersion, Reason: tc.givenReason})
			checkErr(t, err, tc.wantErr, tc.wantFields)
			if after := mustGet(t, e.client, before.ID); !reflect.DeepEqual(after, before) {
				t.Errorf("after a refused cancel the order is %+v, want it unchanged: %+v", after, before)
			}
		})
	}
}

// TestConcurrentCancel races cancels at version 1: one wins, the others
// get 409, and the stream holds one cancellation.
func TestConcurrentCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	placed := mustCreate(t, e.client, order(ada.ID))

	results, errs := race(racers, func(i int) (contract.Order, error) {
		return cancelOrder(t.Context(), e.client, contract.CancelRequest{ID: placed.ID, Version: 1, Reason: fmt.Sprintf("racer %d", i)})
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("cancels %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, wire.ErrConflict):
			t.Errorf("cancel %d: err = %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no cancel succeeded: %v", errs)
	}
	got := mustGet(t, e.client, placed.ID)
	if !reflect.DeepEqual(got, results[winner]) || got.Version != 2 || got.CancelReason != fmt.Sprintf("racer %d", winner) {
		t.Errorf("get = %+v, want the winner's cancel %+v at version 2", got, results[winner])
	}
	subject := contract.EventSubject(placed.ID, contract.EventCancelled)
	if n := eventCount(t, e, subject); n != 1 {
		t.Errorf("%s holds %d events, want 1", subject, n)
	}
}
