package orders_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/orders/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// userEventsStats returns the stats of the consumer of user events, as
// orders.consumers answers them.
func userEventsStats(t *testing.T, c *messaging.Client) (messaging.ConsumerStats, error) {
	t.Helper()
	all, err := consumerStats(t.Context(), c)
	if err != nil {
		return messaging.ConsumerStats{}, err
	}
	st, ok := all[orders.UserEventsConsumer]
	if !ok {
		return messaging.ConsumerStats{}, fmt.Errorf("orders.consumers = %+v: no %s", all, orders.UserEventsConsumer)
	}
	return st, nil
}

// waitHandled waits until the consumer of user events has handled at least
// n events, and returns its stats.
func waitHandled(t *testing.T, c *messaging.Client, n uint64) messaging.ConsumerStats {
	t.Helper()
	var st messaging.ConsumerStats
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		if st, err = userEventsStats(t, c); err != nil {
			return err
		}
		if st.Handled < n {
			return fmt.Errorf("handled %d user events, want %d: %+v", st.Handled, n, st)
		}
		return nil
	})
	return st
}

// usersStream returns the USERS stream.
func usersStream(t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), userscontract.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return js, stream
}

// waitCancelledByDeletion polls orders.get until each order is cancelled
// because its user was deleted, and returns them as they are then.
func waitCancelledByDeletion(t *testing.T, c *messaging.Client, placed []contract.Order) []contract.Order {
	t.Helper()
	got := make([]contract.Order, len(placed))
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		for i, p := range placed {
			o, err := get(t.Context(), c, p.ID)
			if err != nil {
				return err
			}
			if o.Status != contract.StatusCancelled {
				return fmt.Errorf("order %s is %s", o.ID, o.Status)
			}
			got[i] = o
		}
		return nil
	})
	for i, p := range placed {
		want := p
		want.Status = contract.StatusCancelled
		want.CancelReason = "user deleted"
		want.Version = 2
		want.UpdatedAt = got[i].UpdatedAt
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("order after the user's deletion = %+v, want %+v", got[i], want)
		}
	}
	return got
}

func TestUserDeletedCancelsOpenOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	alan := mustCreateUser(t, e.client, "Alan", "alan@example.com")
	var open []contract.Order
	for range 3 {
		open = append(open, mustCreate(t, e.client, order(ada.ID)))
	}
	byHand := mustCreate(t, e.client, order(ada.ID))
	byHand = mustCancel(t, e.client, contract.CancelRequest{ID: byHand.ID, Version: 1, Reason: "by hand"})
	alans := []contract.Order{mustCreate(t, e.client, order(alan.ID)), mustCreate(t, e.client, order(alan.ID))}

	mustDeleteUser(t, e.client, ada.ID)
	cancelled := waitCancelledByDeletion(t, e.client, open)

	untouched := append([]contract.Order{byHand}, alans...)
	for _, want := range untouched {
		if got := mustGet(t, e.client, want.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("order %s changed: %+v, want %+v", want.ID, got, want)
		}
	}

	// Wait until every event on USERS so far (two creates, one delete)
	// is handled, so the count below can only grow by the copy.
	// Only the users identity may write USERS: the copy below is its.
	js, stream := usersStream(t, connect(t, e.srv, "users-copy"))
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(userscontract.EventSubjects))
	if err != nil {
		t.Fatal(err)
	}
	var events uint64
	for _, n := range info.State.Subjects {
		events += n
	}
	before := waitHandled(t, e.client, events)
	if before.Handled != events || before.DeadLettered != 0 {
		t.Fatalf("consumer stats %+v: want %d handled, none dead-lettered", before, events)
	}

	// A redelivery: the same user.deleted again, as a new message.
	deleted, err := stream.GetLastMsgForSubject(t.Context(), userscontract.EventSubjectPrefix+ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if typ := deleted.Header.Get(wire.HeaderEventType); typ != userscontract.EventDeleted {
		t.Fatalf("last event of %s is %q, want %s", ada.ID, typ, userscontract.EventDeleted)
	}
	dup := nats.NewMsg(deleted.Subject)
	dup.Data = deleted.Data
	for k, v := range deleted.Header {
		// The original publish's expectation headers would refuse the
		// copy.
		if !strings.HasPrefix(k, "Nats-") {
			dup.Header[k] = v
		}
	}
	dup.Header.Set(jetstream.MsgIDHeader, ulid.Make().String())
	if ack, err := js.PublishMsg(t.Context(), dup); err != nil || ack.Duplicate {
		t.Fatalf("publish the copy: %+v, %v", ack, err)
	}
	after := waitHandled(t, e.client, before.Handled+1)
	if after.DeadLettered != 0 || after.Retried != before.Retried {
		t.Errorf("consumer stats after the copy %+v: want no retries and nothing dead-lettered", after)
	}

	for _, want := range append(cancelled, untouched...) {
		if got := mustGet(t, e.client, want.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("order %s changed on the redelivery: %+v, want %+v", want.ID, got, want)
		}
		subject := contract.EventSubject(want.ID, contract.EventCancelled)
		wantEvents := uint64(0)
		if want.Status == contract.StatusCancelled {
			wantEvents = 1
		}
		if n := eventCount(t, e, subject); n != wantEvents {
			t.Errorf("%s holds %d events, want %d", subject, n, wantEvents)
		}
	}
}

// TestUserDeletedWhenOrdersStartedFirst starts orders before USERS exists:
// its consumer declares itself once users created the stream.
func TestUserDeletedWhenOrdersStartedFirst(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	startOrders(t, connect(t, srv, "orders"))
	startUsers(t, connect(t, srv, "users"))
	c := newClient(t, connect(t, srv, "client"))

	ada := mustCreateUser(t, c, "Ada", "ada@example.com")
	placed := mustCreate(t, c, order(ada.ID))
	mustDeleteUser(t, c, ada.ID)
	waitCancelledByDeletion(t, c, []contract.Order{placed})
}

func TestConsumerHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mustCreateUser(t, e.client, "Ada", "ada@example.com")

	check := func(source string, all map[string]messaging.ConsumerStats) error {
		st, ok := all[orders.UserEventsConsumer]
		switch {
		case !ok || len(all) != 1:
			return fmt.Errorf("%s = %+v, want only %s", source, all, orders.UserEventsConsumer)
		case st.Stream != userscontract.Stream || st.Consumer != orders.UserEventsConsumer:
			return fmt.Errorf("%s: stream, consumer = %q, %q; want %q, %q", source, st.Stream, st.Consumer, userscontract.Stream, orders.UserEventsConsumer)
		case st.InfoUnavailable:
			return fmt.Errorf("%s: %+v: server figures unavailable", source, st)
		case st.Handled < 1 || st.Pending != 0 || st.AckPending != 0:
			return fmt.Errorf("%s: %+v: want the user's creation handled", source, st)
		}
		return nil
	}

	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		all, err := consumerStats(t.Context(), e.client)
		if err != nil {
			return err
		}
		return check(contract.ServiceName+".consumers", all)
	})

	subject, err := micro.ControlSubject(micro.StatsVerb, contract.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.nc.Request(subject, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(reply.Data, &stats); err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var found bool
	for _, ep := range stats.Endpoints {
		if ep.Name != "consumers" {
			continue
		}
		found = true
		if ep.Subject != contract.ServiceName+".consumers" {
			t.Errorf("endpoint consumers on %q, want %s.consumers", ep.Subject, contract.ServiceName)
		}
		var all map[string]messaging.ConsumerStats
		if err := json.Unmarshal(ep.Data, &all); err != nil {
			t.Fatalf("consumers data %s: %v", ep.Data, err)
		}
		if err := check(subject, all); err != nil {
			t.Error(err)
		}
	}
	if !found {
		t.Errorf("%s lists no endpoint consumers: %s", subject, reply.Data)
	}
}
