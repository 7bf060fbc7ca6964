package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// The cluster tests run what production runs: three nats-server processes
// (built from the nats-server module this one depends on) and switchboard
// processes against them, and kill them as an operator's tooling or a
// crash would. docs/operations.md reports their figures.

var natsBuild struct {
	once sync.Once
	path string
	err  error
}

// natsServerBinary builds nats-server once per test run.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test: builds and runs nats-server processes")
	}
	natsBuild.once.Do(func() {
		path := filepath.Join(binDir, "nats-server")
		out, err := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBuild.err = fmt.Errorf("go build nats-server: %w\n%s", err, out)
			return
		}
		natsBuild.path = path
	})
	if natsBuild.err != nil {
		t.Fatal(natsBuild.err)
	}
	return natsBuild.path
}

// natsNode is one nats-server process of a natsCluster, on fixed
// addresses and store across restarts.
type natsNode struct {
	name, conf      string
	client, monitor string
	cmd             *exec.Cmd
	exited          chan struct{}
	log             *syncBuffer
}

type natsCluster struct {
	t     *testing.T
	bin   string
	nodes []*natsNode
}

// startNATSCluster starts an n-node cluster with JetStream and a short
// lame-duck period, and waits until every node is healthy.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, bin: natsServerBinary(t)}
	dir := t.TempDir()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = "nats-route://" + testkit.FreeAddr(t)
	}
	for i := range n {
		node := &natsNode{name: fmt.Sprintf("n%d", i), client: testkit.FreeAddr(t), monitor: testkit.FreeAddr(t)}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, fmt.Sprintf("%q", r))
			}
		}
		node.conf = filepath.Join(dir, node.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: %q
http: %q
lame_duck_duration: "30s"
lame_duck_grace_period: "1s"
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
cluster { name: switchboard, listen: %q, routes: [%s] }
`, node.name, node.client, node.monitor, filepath.Join(dir, node.name), strings.TrimPrefix(routes[i], "nats-route://"), strings.Join(others, ", "))
		if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
	}
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitHealthy(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
	})
	return c
}

func (c *natsCluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.log = &syncBuffer{}
	n.exited = make(chan struct{})
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
}

// waitHealthy waits for node i's /healthz: accepting clients, and its
// JetStream current with the cluster.
func (c *natsCluster) waitHealthy(i int) {
	c.t.Helper()
	n := c.nodes[i]
	testkit.Eventually(c.t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-n.exited:
			c.t.Fatalf("nats-server %s exited:\n%s", n.name, n.log)
		default:
		}
		resp, err := http.Get("http://" + n.monitor + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /healthz: %s", n.name, resp.Status)
		}
		return nil
	})
}

// kill kills node i at once (SIGKILL), as a crash does.
func (c *natsCluster) kill(i int) {
	n := c.nodes[i]
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// lameDuck puts node i in lame-duck mode (SIGUSR2, what a rolling restart
// sends): it stops accepting clients, moves them and its stream leaders
// away over lame_duck_duration, then exits.
func (c *natsCluster) lameDuck(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("nats-server %s still running 30s after lame duck", n.name)
	}
}

func (c *natsCluster) urls() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+n.client)
	}
	return strings.Join(urls, ",")
}

// connect is a client that follows the cluster through restarts.
func (c *natsCluster) connect(name string) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.urls(), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Connections reset by killed nodes are expected here.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// runSwitchboard starts `switchboard run <services>` against the cluster,
// with replicated streams.
func (c *natsCluster) runSwitchboard(services ...string) *process {
	c.t.Helper()
	args := append([]string{"run"}, services...)
	args = append(args, "--nats-url", c.urls(), "--stream-replicas", "3", "--http-listen", "127.0.0.1:0",
		"--gateway-listen", "127.0.0.1:0", "--log-format", "json")
	return startProcessEnv(c.t, []string{"SWITCHBOARD_WEBHOOK_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(make([]byte, 32))}, args...)
}

// retried calls f, and once more after a failure, as a client with one
// retry does; it returns the second error and whether a retry was needed.
func retried(f func() error) (err error, retry bool) {
	if err = f(); err == nil {
		return nil, false
	}
	time.Sleep(100 * time.Millisecond) // the client's backoff before its retry
	return f(), true
}

// load drives users.create (with an idempotency key) and users.get until
// stop is closed; every call gets one retry.
type load struct {
	c                      *messaging.Client
	mu                     sync.Mutex
	acked                  map[string]users.User
	calls, retries, failed atomic.Int64
	firstFailures          sync.Map // error text → count
	lastFailure            atomic.Value
}

func newLoad(c *messaging.Client) *load { return &load{c: c, acked: map[string]users.User{}} }

func (l *load) run(stop <-chan struct{}, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				var call func() error
				op := "users.get"
				if i%3 == 0 {
					op = "users.create"
					key := fmt.Sprintf("k-%d", i)
					req := users.CreateRequest{Name: "User", Email: fmt.Sprintf("u%d@example.com", i), Age: ptr(30)}
					call = func() error {
						u, err := users.CreateUser(context.Background(), l.c, req, wire.WithIdempotencyKey(key))
						if err == nil {
							l.mu.Lock()
							l.acked[u.ID] = u
							l.mu.Unlock()
						}
						return err
					}
				} else {
					id := l.some(int(i) + w)
					if id == "" {
						continue
					}
					call = func() error {
						_, err := users.GetUser(context.Background(), l.c, users.GetRequest{ID: id})
						return err
					}
				}
				l.calls.Add(1)
				err, retry := retried(call)
				if retry {
					l.retries.Add(1)
				}
				if err != nil {
					l.failed.Add(1)
					l.lastFailure.Store(op + ": " + err.Error())
				}
			}
		})
	}
	return &wg
}

// some returns one acknowledged user's id ("" before the first).
func (l *load) some(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.acked {
		if n--; n <= 0 {
			return id
		}
	}
	for id := range l.acked {
		return id
	}
	return ""
}

// checkAcked reads every acknowledged user back.
func (l *load) checkAcked(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, want := range l.acked {
		got, err := users.GetUser(t.Context(), l.c, users.GetRequest{ID: id})
		if err != nil || got.Email != want.Email {
			t.Fatalf("acknowledged user %s reads %+v, %v", id, got, err)
		}
	}
}

func (l *load) report(t *testing.T, what string) {
	t.Helper()
	last, _ := l.lastFailure.Load().(string)
	t.Logf("%s: %d calls, %d needed a retry, %d failed after it (last: %q), %d users acknowledged",
		what, l.calls.Load(), l.retries.Load(), l.failed.Load(), last, len(l.acked))
}

// A rolling restart (each node in lame-duck mode, then back, in turn)
// under steady creates and gets: no call fails after one retry, and every
// acknowledged create reads back.
func TestClusterRollingRestart(t *testing.T) {
	cl := startNATSCluster(t, 3)
	cl.runSwitchboard("users")
	c, err := messaging.NewClient(cl.connect("load"), messaging.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l := newLoad(c)
	stop := make(chan struct{})
	wg := l.run(stop, 8)
	started := time.Now()
	for i := range cl.nodes {
		cl.lameDuck(i)
		cl.start(i)
		cl.waitHealthy(i)
	}
	close(stop)
	wg.Wait()
	l.report(t, fmt.Sprintf("rolling restart of 3 nodes in %v", time.Since(started).Round(time.Second)))
	if l.failed.Load() != 0 {
		t.Fatalf("%d calls failed after a retry", l.failed.Load())
	}
	if len(l.acked) == 0 {
		t.Fatal("no create was acknowledged during the restart")
	}
	l.checkAcked(t)
}

// Two replicas of users and orders; one is killed (SIGKILL) while users
// are created, read and deleted: the other carries the queue group with
// at most one retry per call, and the cancellations the dead one held are
// redelivered and done once each.
func TestClusterServiceReplicaKill(t *testing.T) {
	cl := startNATSCluster(t, 3)
	a := cl.runSwitchboard("users", "orders")
	cl.runSwitchboard("users", "orders")
	nc := cl.connect("load")
	c, err := messaging.NewClient(nc, messaging.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// Users with an order each, deleted while one replica dies: each
	// deletion makes the orders consumer cancel that user's order.
	const n = 60
	var (
		placed  []orders.Order
		failed  atomic.Int64
		retries atomic.Int64
	)
	for i := range n {
		var u users.User
		var o orders.Order
		if err, _ := retried(func() (err error) {
			u, err = users.CreateUser(ctx, c, users.CreateRequest{Name: "U", Email: fmt.Sprintf("r%d@example.com", i), Age: ptr(30)},
				wire.WithIdempotencyKey(fmt.Sprintf("u-%d", i)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err, _ := retried(func() (err error) {
			o, err = orders.CreateOrder(ctx, c, orders.CreateRequest{UserID: u.ID, Currency: "EUR",
				Items: []orders.Item{{SKU: "book-1", Quantity: 1, UnitPriceCents: 100}}}, wire.WithIdempotencyKey(fmt.Sprintf("o-%d", i)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		placed = append(placed, o)
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 6 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if i == n/3 {
					_ = a.cmd.Process.Signal(syscall.SIGKILL)
				}
				o := placed[i]
				err, retry := retried(func() error {
					u, err := users.GetUser(ctx, c, users.GetRequest{ID: o.UserID})
					if errors.Is(err, wire.ErrNotFound) {
						return nil // deleted by the first try
					}
					if err != nil {
						return err
					}
					_, err = users.DeleteUser(ctx, c, users.DeleteRequest{ID: u.ID, Version: u.Version})
					return err
				})
				if retry {
					retries.Add(1)
				}
				if err != nil {
					failed.Add(1)
					t.Logf("delete %s: %v", o.UserID, err)
				}
			}
		})
	}
	wg.Wait()
	<-a.exited
	t.Logf("%d deletions with one replica killed: %d needed a retry, %d failed after it", n, retries.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d deletions failed after a retry", failed.Load())
	}

	// Every order is cancelled, by exactly one event.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, orders.Stream)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 90*time.Second, 250*time.Millisecond, func() error {
		for _, o := range placed {
			got, err := orders.GetOrder(ctx, c, orders.GetRequest{ID: o.ID})
			if err != nil {
				return err
			}
			if got.Status != orders.StatusCancelled {
				return fmt.Errorf("order %s is %s, want cancelled", o.ID, got.Status)
			}
		}
		return nil
	})
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("orders.events.*.cancelled"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range placed {
		if k := info.State.Subjects["orders.events."+o.ID+".cancelled"]; k != 1 {
			t.Errorf("order %s has %d cancelled events, want 1", o.ID, k)
		}
	}
	cons, err := js.Consumer(ctx, "USERS", "orders-on-user-events")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := js.Stream(ctx, users.Stream)
	if err != nil {
		t.Fatal(err)
	}
	ui, err := events.Info(ctx, jetstream.WithSubjectFilter("users.events.>"))
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for _, k := range ui.State.Subjects {
		stored += k
	}
	// Each delivery, redeliveries included, takes a consumer sequence.
	t.Logf("orders' consumer: %d deliveries for %d events (%d redelivered after the kill), %d pending, %d unacked",
		ci.Delivered.Consumer, stored, ci.Delivered.Consumer-stored, ci.NumPending, ci.NumAckPending)
}

// Every node killed at once (SIGKILL) and restarted: the streams, the
// buckets and the durable consumers are all there, with every
// acknowledged write.
func TestClusterWholeKill9(t *testing.T) {
	cl := startNATSCluster(t, 3)
	sb := cl.runSwitchboard("users", "orders", "notifications")
	nc := cl.connect("client")
	c, err := messaging.NewClient(nc, messaging.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var acked []users.User
	for i := range 200 {
		u, err := users.CreateUser(ctx, c, users.CreateRequest{Name: "U", Email: fmt.Sprintf("w%d@example.com", i), Age: ptr(30)})
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, u)
	}
	if _, err := c.Call(ctx, "notifications.webhooks.put",
		[]byte(`{"id":"crm","url":"https://hooks.example.com/in","secret":"whsec_ZTJlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm","subjects":["users.events.>"]}`)); err != nil {
		t.Fatal(err)
	}

	for i := range cl.nodes {
		cl.kill(i)
	}
	for i := range cl.nodes {
		cl.start(i)
	}
	for i := range cl.nodes {
		cl.waitHealthy(i)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, 250*time.Millisecond, func() error {
		for _, name := range []string{users.Stream, orders.Stream, "NOTIFICATIONS", messaging.DefaultDeadLetterStream, "KV_NOTIFICATIONS_WEBHOOKS"} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if r := s.CachedInfo().Config.Replicas; r != 3 {
				return fmt.Errorf("stream %s has %d replicas, want 3", name, r)
			}
		}
		for _, d := range [][2]string{{users.Stream, "orders-on-user-events"}, {users.Stream, "notifications-users"}, {orders.Stream, "notifications-orders"}} {
			if _, err := js.Consumer(ctx, d[0], d[1]); err != nil {
				return fmt.Errorf("consumer %s/%s: %w", d[0], d[1], err)
			}
		}
		reply, err := c.Call(ctx, "notifications.webhooks.list", nil)
		if err != nil {
			return err
		}
		if !strings.Contains(string(reply.Data), `"crm"`) {
			return fmt.Errorf("webhooks after the restart: %s", reply.Data)
		}
		for _, want := range acked {
			got, err := users.GetUser(ctx, c, users.GetRequest{ID: want.ID})
			if err != nil || got.Email != want.Email {
				return fmt.Errorf("acknowledged user %s reads %+v, %v", want.ID, got, err)
			}
		}
		return nil
	})
	select {
	case <-sb.exited:
		t.Fatalf("switchboard exited during the cluster's restart: %v\n%s", sb.err, sb.stderr)
	default:
	}
}
