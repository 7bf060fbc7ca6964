package projector_test

import (
	"testing"
	"time"

	"github.com/devloop/switchboard/services/projector"
)

// A rebuild while the projector runs and users keep writing yields the
// same tables as before (and as a replay), and the projector goes on
// writing into the new tables.
func TestRebuildYieldsIdenticalTables(t *testing.T) {
	e := newEnv(t)
	p := e.startProjector(t, "projector", projector.Options{BatchSize: 25})
	crud(t, e, 30)
	e.waitCaughtUp(t, 20*time.Second)
	before := e.checkTablesMatchStreams(t)

	stop := startWriter(t, e)
	res, err := projector.Rebuild(t.Context(), e.js, e.pgURL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Projection != "users" || res[0].Events < 60 || res[1].Events < 30 {
		t.Fatalf("rebuild results %+v", res)
	}
	stop()
	e.waitCaughtUp(t, 20*time.Second)
	after := e.checkTablesMatchStreams(t)
	if len(after.Users) <= len(before.Users) {
		t.Errorf("no writes landed during and after the rebuild: %d users before, %d after", len(before.Users), len(after.Users))
	}
	// The untouched part is identical.
	for i, u := range before.Users {
		if after.Users[i] != u {
			t.Fatalf("user %s changed by the rebuild: %+v, was %+v", u.ID, after.Users[i], u)
		}
	}
	if before.checksum() != (state{Users: after.Users[:len(before.Users)], Orders: after.Orders}).checksum() {
		t.Error("rebuilt tables differ from the tables before")
	}
	// The indexes kept their names (later migrations refer to them).
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_indexes WHERE schemaname = 'projector'
		AND indexname IN ('users_pkey', 'users_name_prefix', 'users_email_prefix', 'orders_pkey', 'orders_user_created', 'order_items_pkey')`).Scan(&n); err != nil || n != 6 {
		t.Errorf("%d of 6 indexes found by name after the rebuild (%v)", n, err)
	}
	// A new write is projected into the new tables.
	u := e.createUser(t, "After", "after@example.com", 1)
	e.waitCaughtUp(t, 10*time.Second)
	var name string
	if err := e.pool.QueryRow(t.Context(), `SELECT name FROM projector.users WHERE id = $1`, u.ID).Scan(&name); err != nil || name != "After" {
		t.Fatalf("user written after the rebuild: %q, %v", name, err)
	}
	if st := p.Status(t.Context()).Projections["users"]; st.Role != "leader" {
		t.Errorf("status %+v", st)
	}
}
