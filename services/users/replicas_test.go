package users_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// requestsByInstance asks every running users instance for its micro stats
// ($SRV.STATS.users answers once per instance) and returns the number of
// requests each instance's endpoints received, by instance id. It returns
// an error while micro's request counts and the handled counts disagree:
// micro counts a request only after its dispatch returns, which can be just
// after the reply reached the client.
func requestsByInstance(t *testing.T, nc *nats.Conn, instances int) (map[string]int, error) {
	t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, contract.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var lag error
	deadline := time.Now().Add(5 * time.Second)
	for len(counts) < instances {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("stats: %d of %d instances answered: %v", len(counts), instances, err)
		}
		var stats micro.Stats
		if err := json.Unmarshal(msg.Data, &stats); err != nil {
			t.Fatalf("decode stats %s: %v", msg.Data, err)
		}
		if _, dup := counts[stats.ID]; dup {
			t.Fatalf("instance %s answered twice", stats.ID)
		}
		n := 0
		for _, ep := range stats.Endpoints {
			var data messaging.EndpointStats
			if err := json.Unmarshal(ep.Data, &data); err != nil {
				t.Fatalf("decode endpoint stats %s: %v", ep.Data, err)
			}
			if uint64(ep.NumRequests) != data.Handled {
				lag = fmt.Errorf("instance %s endpoint %s: %d requests, %d handled", stats.ID, ep.Name, ep.NumRequests, data.Handled)
			}
			n += ep.NumRequests
		}
		counts[stats.ID] = n
	}
	return counts, lag
}

func TestReplicas(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	for i := range 3 {
		startUsers(t, connect(t, srv, fmt.Sprintf("users-%d", i)))
	}
	nc := connect(t, srv, "client")
	c := newClient(t, nc)
	ctx := t.Context()

	// 200 operations: 40 creates, then for every user a get, an update
	// and a list, and 40 more operations: delete the even users and read
	// the odd ones.
	const n = 40
	sent := 0
	created := make([]contract.User, n)
	for i := range n {
		created[i] = mustCreate(t, c, fmt.Sprintf("user-%d", i), fmt.Sprintf("user%d@example.com", i), 20)
		sent++
	}
	if !slices.IsSortedFunc(created, func(a, b contract.User) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("ids are not in creation order: %q", ids(created))
	}
	updated := make([]contract.User, n)
	for i, u := range created {
		if got := mustGet(t, c, u.ID); got != u {
			t.Errorf("get %s = %+v, want %+v", u.ID, got, u)
		}
		updated[i] = mustUpdate(t, c, contract.UpdateRequest{ID: u.ID, Version: 1, Age: ptr(21)})
		resp, err := list(ctx, c, contract.ListRequest{Limit: ptr(1), After: prevID(created, i)})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		// Whichever replica answers has seen the update just made.
		if len(resp.Users) != 1 || resp.Users[0] != updated[i] {
			t.Errorf("list after the update of %s = %+v, want %+v", u.ID, resp.Users, updated[i])
		}
		sent += 3
	}
	for i, u := range updated {
		if i%2 == 0 {
			mustDelete(t, c, u.ID, 2)
		} else if got := mustGet(t, c, u.ID); got != u {
			t.Errorf("get %s = %+v, want %+v", u.ID, got, u)
		}
		sent++
	}
	if sent != 200 {
		t.Fatalf("sent %d requests, want 200", sent)
	}

	var counts map[string]int
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		var err error
		counts, err = requestsByInstance(t, nc, 3)
		if err != nil {
			return err
		}
		total := 0
		for _, k := range counts {
			total += k
		}
		if total != sent {
			return fmt.Errorf("instances received %d requests in all, want %d: %v", total, sent, counts)
		}
		return nil
	})
	for id, k := range counts {
		if k == 0 {
			t.Errorf("instance %s served no request: %v", id, counts)
		}
	}
	t.Logf("requests by instance: %v", counts)

	var wantLive []string
	for i := 1; i < n; i += 2 {
		wantLive = append(wantLive, created[i].ID)
	}
	for range 6 { // several lists, served by several replicas
		if got := ids(listAll(t, c, 7)); !slices.Equal(got, wantLive) {
			t.Fatalf("list = %q, want the odd users %q", got, wantLive)
		}
	}

	t.Run("concurrent updates have one winner", func(t *testing.T) {
		u := created[1]
		_, errs := race(racers, func(i int) (contract.User, error) {
			return update(t.Context(), c, contract.UpdateRequest{ID: u.ID, Version: 2, Name: ptr(fmt.Sprintf("racer %d", i))})
		})
		oneWinner(t, errs)
		if got := mustGet(t, c, u.ID); got.Version != 3 || !strings.HasPrefix(got.Name, "racer ") {
			t.Errorf("get = %+v, want a racer's name at version 3", got)
		}
	})
	t.Run("email uniqueness holds across replicas", func(t *testing.T) {
		results, errs := race(racers, func(i int) (contract.User, error) {
			return create(t.Context(), c, fmt.Sprintf("racer %d", i), "racer@example.com", 30)
		})
		w := oneWinner(t, errs)
		_, err := create(t.Context(), c, "late", "Racer@Example.com", 30)
		checkErr(t, err, wire.ErrConflict, []string{"email"})
		if got := mustGet(t, c, results[w].ID); got != results[w] {
			t.Errorf("get winner = %+v, want %+v", got, results[w])
		}
	})
	t.Run("email updates race across replicas", func(t *testing.T) {
		var live []contract.User // 20 different users, as they are now
		for i := 1; i < n; i += 2 {
			live = append(live, mustGet(t, c, created[i].ID))
		}
		_, errs := race(len(live), func(i int) (contract.User, error) {
			return update(t.Context(), c, contract.UpdateRequest{ID: live[i].ID, Version: live[i].Version, Email: ptr("wanted@example.com")})
		})
		w := oneWinner(t, errs)
		for i, u := range live {
			got := mustGet(t, c, u.ID)
			if hasWanted := got.Email == "wanted@example.com"; hasWanted != (i == w) {
				t.Errorf("user %d has email %q (winner: %d)", i, got.Email, w)
			}
		}
	})
}

// prevID is the list cursor that makes created[i] the first user listed.
func prevID(created []contract.User, i int) string {
	if i == 0 {
		return ""
	}
	return created[i-1].ID
}
