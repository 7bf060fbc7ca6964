package projector_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/projector/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// outage is how long TestPostgresOutage keeps PostgreSQL down. The suite
// uses 6s: longer than the projector's longest reconnect backoff (5s) and
// many batch retries, which is what an outage exercises; the 20s
// is one flag away:
//
//	go test ./services/projector -run Outage -args -outage 20s
var outage = flag.Duration("outage", 6*time.Second, "how long TestPostgresOutage stops PostgreSQL")

// PostgreSQL stopped under steady writes: the projector is degraded (not
// down), queries answer 503, no event is lost, and it catches up after:
// the lag returns to 0 and the tables equal a replay of the streams.
func TestPostgresOutage(t *testing.T) {
	e := newEnv(t)
	p := e.startProjector(t, "projector", projector.Options{BatchSize: 50})
	stop := startWriter(t, e)
	testkit.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		if e.position(t, userscontract.Stream) == 0 {
			return errors.New("nothing applied yet")
		}
		return p.Degraded(t.Context())
	})

	e.pg.Stop(t)
	down := time.Now()
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if p.Degraded(t.Context()) == nil {
			return errors.New("not degraded with PostgreSQL down")
		}
		return nil
	})
	if err := p.Ready(t.Context()); err != nil {
		t.Errorf("not ready with PostgreSQL down: %v (want degraded only)", err)
	}
	if _, err := contract.SearchUsers(t.Context(), e.client, contract.UsersSearchRequest{}); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("search with PostgreSQL down = %v, want a 503", err)
	}
	for time.Since(down) < *outage {
		if err := p.Ready(t.Context()); err != nil {
			t.Fatalf("not ready during the outage: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the outage itself, not synchronisation
	}
	e.pg.Restart(t)
	writes := stop()
	e.waitCaughtUp(t, 60*time.Second)
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if err := p.Degraded(t.Context()); err != nil {
			return err
		}
		st, err := wire.Call[struct{}, map[string]messaging.ConsumerStats](t.Context(), e.client, "projector.consumers", struct{}{})
		if err != nil {
			return err
		}
		if s := st[projector.UsersConsumer]; s.Pending != 0 || s.AckPending != 0 {
			return fmt.Errorf("lag after the outage: %+v", s)
		}
		return nil
	})
	got := e.checkTablesMatchStreams(t)
	if len(got.Users) < writes {
		t.Fatalf("%d users in the table, %d written", len(got.Users), writes)
	}
	if st := p.Status(t.Context()).Projections["users"]; st.Unchanged != 0 || st.Role != contract.RoleLeader {
		t.Errorf("after the outage: %+v", st)
	}
	t.Logf("outage %s; %d users written; %d events applied", *outage, writes, p.Status(context.Background()).Projections["users"].Applied)
}
