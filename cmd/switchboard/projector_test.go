package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/pgtest"
	"github.com/devloop/switchboard/internal/testkit"
	projector "github.com/devloop/switchboard/services/projector/contract"
)

// `run users orders projector` against an external NATS and PostgreSQL:
// a created user is found by users.search; /readyz says degraded, not
// unavailable, while PostgreSQL is down, and ready again after; `projector
// rebuild` rebuilds the tables.
func TestRunProjector(t *testing.T) {
	pg := pgtest.Start(t)
	srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	pgURL := strings.Replace(pg.URL(""), "postgres@", "postgres:pgs3cret@", 1) // trust auth ignores it
	sb := startRun(t, "run", "users", "orders", "projector", "--nats-url", srv.ClientURL(), "--postgres-url", pgURL,
		"--http-listen", "127.0.0.1:0", "--shutdown-timeout", "5s")
	sb.waitReady(t)
	c := client(t, natsTarget{url: srv.ClientURL()})
	ada := createUser(t, c, "Ada Lovelace", "ada@example.com", 36)
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		res, err := projector.SearchUsers(t.Context(), c, projector.UsersSearchRequest{NamePrefix: "ada"})
		if err != nil || len(res.Users) != 1 || res.Users[0].ID != ada.ID {
			return fmt.Errorf("users.search = %+v, %v", res, err)
		}
		return nil
	})
	readyz := func(wantStatus string, wantProjector func(string) bool) {
		t.Helper()
		testkit.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
			code, body, err := getJSON(t.Context(), sb.opsURL+"/readyz")
			if err != nil {
				return err
			}
			svcs, _ := body["services"].(map[string]any)
			st, _ := svcs["projector"].(string)
			if code != http.StatusOK || body["status"] != wantStatus || !wantProjector(st) {
				return fmt.Errorf("GET /readyz = %d %s", code, jsonString(body))
			}
			return nil
		})
	}
	readyz("ready", func(s string) bool { return s == "ok" })
	pg.Stop(t)
	readyz("degraded", func(s string) bool { return strings.HasPrefix(s, "degraded: postgres unreachable") })
	pg.Restart(t)
	readyz("ready", func(s string) bool { return s == "ok" })

	var out, errOut bytes.Buffer
	err = run(t.Context(), []string{"switchboard", "projector", "rebuild", "--nats-url", srv.ClientURL(), "--postgres-url", pgURL, "users"},
		fakeEnv(nil), &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "rebuilt users from USERS: 1 events") {
		t.Fatalf("projector rebuild = %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
	}
	if err := sb.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
	if all := sb.stdout.String() + sb.stderr.String() + errOut.String(); strings.Contains(all, "pgs3cret") {
		t.Errorf("the PostgreSQL password was printed:\n%s", all)
	}
}

func TestProjectorNeedsPostgres(t *testing.T) {
	srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	var out, errOut bytes.Buffer
	err = run(t.Context(), []string{"switchboard", "run", "projector", "--nats-url", srv.ClientURL(), "--http-listen", "127.0.0.1:0"}, fakeEnv(nil), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--postgres-url") {
		t.Errorf("run projector without PostgreSQL = %v, want an error naming --postgres-url", err)
	}
	for _, args := range [][]string{{"projector"}, {"projector", "rebuild", "carts"}, {"projector", "rebuild"}} {
		err := run(t.Context(), append([]string{"switchboard"}, args...), fakeEnv(nil), &out, &errOut)
		var ex exitError
		if !errors.As(err, &ex) || ex.code != 2 {
			t.Errorf("switchboard %s = %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	if err := run(t.Context(), []string{"switchboard", "run", "--postgres-url", "mysql://x", "projector"}, fakeEnv(nil), &out, &errOut); err == nil {
		t.Error("a mysql:// URL was accepted")
	}
}
