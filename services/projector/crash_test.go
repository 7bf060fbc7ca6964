package projector_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/projector"
	userscontract "github.com/devloop/switchboard/services/users/contract"
)

// The crash tests run the projector in a child process, this test binary
// run again with these variables set, and kill it with SIGKILL.
const (
	childNATS     = "PROJECTOR_TEST_CHILD_NATS_URL"
	childPostgres = "PROJECTOR_TEST_CHILD_POSTGRES_URL"
	childHang     = "PROJECTOR_TEST_CHILD_HANG_AFTER"
	childKeys     = "PROJECTOR_TEST_CHILD_KEY_DIR"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childNATS); url != "" {
		hang, _ := strconv.Atoi(os.Getenv(childHang))
		runChild(url, os.Getenv(childKeys), os.Getenv(childPostgres), hang)
		return
	}
	os.Exit(m.Run())
}

// runChild runs a projector until it is killed. Before each commit it
// prints "batch <stream> <first> <last>"; the batch after hang USERS
// batches never commits, so a kill after its line lands inside an open
// transaction (0: none hangs).
func runChild(natsURL, keyDir, pgURL string, hang int) {
	g := projector.Access()
	keys, err := natsauth.LoadKeys(keyDir, []string{g.User})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	as, err := keys.ConnectOptions(g)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nc, err := nats.Connect(natsURL, as...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts := projector.Options{PostgresURL: pgURL, BatchSize: 20}
	var mu sync.Mutex
	users := 0
	projector.WithBeforeCommit(&opts, func(batch []*messaging.Delivery) {
		mu.Lock()
		fmt.Printf("batch %s %d %d\n", batch[0].Stream, batch[0].StreamSeq, batch[len(batch)-1].StreamSeq)
		if batch[0].Stream == userscontract.Stream {
			users++
		}
		n := users
		mu.Unlock()
		if hang > 0 && n > hang {
			select {} // killed in here, the transaction open
		}
	})
	if _, err := projector.Start(context.Background(), nc, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}

// child is a projector process.
type child struct {
	cmd     *exec.Cmd
	batches chan [2]uint64 // USERS batches about to commit
}

func startChild(t *testing.T, e *env, hangAfter int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childNATS+"="+e.srv.ClientURL(), childKeys+"="+natsauth.KeyDir(e.srv.StoreDir()), childPostgres+"="+e.pgURL, childHang+"="+strconv.Itoa(hangAfter))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, batches: make(chan [2]uint64, 1000)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[0] == "batch" && f[1] == userscontract.Stream {
				first, _ := strconv.ParseUint(f[2], 10, 64)
				last, _ := strconv.ParseUint(f[3], 10, 64)
				select {
				case c.batches <- [2]uint64{first, last}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// writer creates and updates users through NATS until stopped.
func startWriter(t *testing.T, e *env) (stop func() int) {
	t.Helper()
	var n atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			age := 30
			u, err := userscontract.CreateUser(context.Background(), e.client, userscontract.CreateRequest{
				Name: "Writer " + strconv.Itoa(i), Email: fmt.Sprintf("w%d-%d@example.com", i, time.Now().UnixNano()), Age: &age})
			if err != nil {
				continue // users itself may be busy; the stream is the truth
			}
			age++
			_, _ = userscontract.UpdateUser(context.Background(), e.client, userscontract.UpdateRequest{ID: u.ID, Version: 1, Age: &age})
			n.Add(1)
		}
	}()
	return func() int {
		close(done)
		<-finished
		return int(n.Load())
	}
}

// Killing the projector with SIGKILL inside a batch transaction, again and
// again, and restarting it, leaves tables equal to a replay of the stream:
// no event applied twice, none missing.
func TestKillMidBatchNoDuplicateNoGap(t *testing.T) {
	e := newEnv(t)
	stop := startWriter(t, e)
	for kill := range 3 {
		// A few batches commit, then it hangs inside the next one.
		c := startChild(t, e, 2+kill)
		var open [2]uint64
		for i := range 3 + kill {
			select {
			case open = <-c.batches:
			case <-time.After(30 * time.Second):
				t.Fatalf("kill %d: no batch %d within 30s", kill, i)
			}
		}
		c.kill()
		// The batch it was killed in did not commit: the position is
		// before it.
		if pos := e.position(t, userscontract.Stream); pos >= open[1] {
			t.Fatalf("kill %d: position %d after a kill inside the batch %v: not killed mid-batch", kill, pos, open)
		}
	}
	writes := stop()
	if writes == 0 {
		t.Fatal("the writer wrote nothing")
	}
	startChild(t, e, 0)
	e.waitCaughtUp(t, 30*time.Second)
	got := e.checkTablesMatchStreams(t)
	if len(got.Users) < writes {
		t.Fatalf("%d users in the table, %d written", len(got.Users), writes)
	}
	for _, u := range got.Users {
		if u.Version != 2 && u.Version != 1 {
			t.Fatalf("user %+v", u)
		}
	}
}

// Two replicas started at once: one migration, one leader per projection,
// every event applied once; when the leader stops, the other takes over.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t)
	var ps [2]*projector.Service
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() { ps[i] = e.startProjector(t, "replica-"+strconv.Itoa(i), projector.Options{BatchSize: 10}) })
	}
	wg.Wait()
	stop := startWriter(t, e)
	leaderOf := func(name string) (int, error) {
		lead := -1
		for i, p := range ps {
			if p == nil {
				continue
			}
			if p.Status(t.Context()).Projections[name].Role == "leader" {
				if lead >= 0 {
					return -1, fmt.Errorf("%s: two leaders", name)
				}
				lead = i
			}
		}
		if lead < 0 {
			return -1, fmt.Errorf("%s: no leader", name)
		}
		return lead, nil
	}
	var lead int
	testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		var err error
		lead, err = leaderOf("users")
		return err
	})
	testkit.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		if e.position(t, userscontract.Stream) < 20 {
			return errors.New("not applying yet")
		}
		return nil
	})
	if n := ps[0].MigrationsApplied() + ps[1].MigrationsApplied(); n != 1 {
		t.Errorf("%d migrations applied by the two replicas, want 1", n)
	}
	var versions int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM projector.goose_db_version WHERE version_id > 0`).Scan(&versions); err != nil || versions != 1 {
		t.Errorf("goose recorded %d migrations (%v), want 1", versions, err)
	}
	// The leader goes; the standby takes over.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ps[lead].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	other := 1 - lead
	stopped := ps[lead]
	ps[lead] = nil
	testkit.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		l, err := leaderOf("users")
		if err == nil && l != other {
			err = fmt.Errorf("leader %d", l)
		}
		return err
	})
	stop()
	e.waitCaughtUp(t, 20*time.Second)
	e.checkTablesMatchStreams(t)
	// Every event was applied exactly once, by one replica or the other.
	before := stopped.Status(t.Context()).Projections["users"]
	after := ps[other].Status(t.Context()).Projections["users"]
	events := countEvents(t, e, userscontract.Stream, userscontract.EventSubjects)
	if got := before.Applied + after.Applied; got != events || before.Unchanged+after.Unchanged != 0 {
		t.Fatalf("replicas applied %d+%d events (unchanged %d+%d) of %d", before.Applied, after.Applied, before.Unchanged, after.Unchanged, events)
	}
}

func countEvents(t *testing.T, e *env, stream, filter string) uint64 {
	t.Helper()
	var n uint64
	e.replay(t, stream, filter, func([]byte) { n++ })
	return n
}
