// Package embeddedtest starts embedded NATS servers for tests, like
// httptest starts HTTP servers: each test gets its own server on a free
// loopback port with its JetStream store in a directory it chooses
// (usually t.TempDir()), shut down when the test ends.
package embeddedtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/natsauth"
)

// Start starts a server with JetStream on dir, shut down when the test
// ends. Shutdown may be called earlier: it is idempotent.
func Start(t testing.TB, dir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(context.Background(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() { Shutdown(t, srv) })
	return srv
}

// StartSecure starts a server like Start that enforces model: every
// identity is an nkey user with the permissions the model derives, and
// nothing connects without credentials. The keys live in
// natsauth.KeyDir(dir), so a server started again on dir takes the same
// ones; connect with ConnectAs. tune, when given, changes the options
// before the start (a smaller max payload, say).
func StartSecure(t testing.TB, dir string, model natsauth.Model, tune ...func(*embedded.Options)) *embedded.Server {
	t.Helper()
	keys, err := natsauth.LoadKeys(natsauth.KeyDir(dir), model.Users())
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	accounts, err := model.Accounts(keys)
	if err != nil {
		t.Fatalf("accounts: %v", err)
	}
	o := embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir, Config: accounts}
	for _, f := range tune {
		f(&o)
	}
	srv, err := embedded.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() { Shutdown(t, srv) })
	return srv
}

// ConnectAs opens an in-process connection named name as the identity of
// g, with its key and inbox prefix, on a server StartSecure started;
// closed when the test ends.
func ConnectAs(t testing.TB, srv *embedded.Server, g natsauth.Grant, name string) *nats.Conn {
	t.Helper()
	keys, err := natsauth.LoadKeys(natsauth.KeyDir(srv.StoreDir()), []string{g.User})
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	opts, err := keys.ConnectOptions(g)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect(name, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", g.User, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Shutdown shuts srv down within 10 seconds, failing the test on error.
func Shutdown(t testing.TB, srv *embedded.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown embedded server: %v", err)
	}
}

// Connect opens an in-process connection named name, closed when the test
// ends.
func Connect(t testing.TB, srv *embedded.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(name)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster is a NATS cluster of in-process servers for one test, each with
// its own store, routed to each other on loopback.
type Cluster struct {
	t       testing.TB
	name    string
	dirs    []string
	clients []string // client host:port of each node
	routes  []string // route host:port of each node
	nodes   []*embedded.Server
}

// StartCluster starts an n-node cluster with JetStream and returns once it
// has a JetStream leader, shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewCluster(t, n)
	for i := range n {
		c.Start(i)
	}
	c.WaitForLeader()
	return c
}

// NewCluster lays out an n-node cluster (addresses and stores) without
// starting any node, for a test that starts them one by one with Start;
// the nodes it starts are shut down when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "test-cluster", nodes: make([]*embedded.Server, n)}
	for range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.clients = append(c.clients, testkit.FreeAddr(t))
		c.routes = append(c.routes, testkit.FreeAddr(t))
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})
	return c
}

// ConnectNode opens a TCP connection to node i alone, closed when the
// test ends.
func (c *Cluster) ConnectNode(i int, name string) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect("nats://"+c.clients[i], nats.Name(name))
	if err != nil {
		c.t.Fatalf("connect to node %d: %v", i, err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Start starts node i (again), on its addresses and store.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	var others []string
	for j, r := range c.routes {
		if j != i {
			others = append(others, r)
		}
	}
	srv, err := embedded.Start(context.Background(), embedded.Options{
		Listen:     c.clients[i],
		StoreDir:   c.dirs[i],
		ServerName: fmt.Sprintf("node-%d", i),
		Cluster:    &embedded.Cluster{Name: c.name, Listen: c.routes[i], Routes: others},
	})
	if err != nil {
		c.t.Fatalf("start node %d: %v", i, err)
	}
	c.nodes[i] = srv
}

// Stop shuts node i down (a clean stop, as in a rolling restart); stopping
// a stopped node does nothing.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	Shutdown(c.t, c.nodes[i])
	c.nodes[i] = nil
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *embedded.Server { return c.nodes[i] }

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// URLs are the client URLs of every node, for a client that follows the
// cluster through failures.
func (c *Cluster) URLs() string {
	var urls []string
	for _, a := range c.clients {
		urls = append(urls, "nats://"+a)
	}
	return strings.Join(urls, ",")
}

// Connect opens a TCP connection to the cluster (any node, reconnecting to
// the others), closed when the test ends.
func (c *Cluster) Connect(name string, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(c.URLs(), opts...)
	if err != nil {
		c.t.Fatalf("connect to the cluster: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// WaitForLeader returns once JetStream answers through the cluster.
func (c *Cluster) WaitForLeader() {
	c.t.Helper()
	nc := c.Connect("leader-check")
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster has no JetStream leader after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// StreamLeader returns the index of the node that leads stream, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, n := range c.nodes {
		if n != nil && n.NATS().JetStreamIsStreamLeader(jetstreamAccount, stream) {
			return i
		}
	}
	return -1
}

// jetstreamAccount is the account of the servers' default user.
const jetstreamAccount = "$G"
