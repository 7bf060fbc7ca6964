package users_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// benchEchoSubject is served by an echo beside the users service, the
// baseline users.get is compared with; benchPublishSubject is where the
// baseline of users.create publishes.
const (
	benchEchoSubject    = "bench.echo"
	benchPublishSubject = "bench.publish.user"
)

// benchEchoText makes the echo request {"text":"…"} 64 bytes of JSON, as
// in messaging's BenchmarkEcho.
const benchEchoText = "hello, switchboard! a small JSON echo payload of 64 b"

type benchEchoMsg struct {
	Text string `json:"text"`
}

// benchEnv is a running users service, its baselines and a client.
type benchEnv struct {
	client *messaging.Client
	nc     *nats.Conn   // the client's connection
	userID string       // an existing user, for users.get
	emails atomic.Int64 // numbers the emails of created users
	// echo is the baseline of users.get: a raw JSON micro echo in this
	// process (inproc), or a raw micro echo in a process of its own
	// (deploy).
	echo benchload.Side
	// cpu is the CPU time used by the processes serving and calling.
	cpu func() (time.Duration, bool)
	// parts, when set, are those processes one by one, reported apart,
	// in place of cpu (deploy).
	parts []benchload.Part
	// cacheStats, when set, reads the counters of the cache in front of
	// the users store.
	cacheStats func() cache.Stats
	svc        *users.Service // nil when the service runs in another process
	// profile, when set, starts a CPU profile of the service's process
	// for one case (benchProfileEnv).
	profile func(testing.TB) (stop func())
}

// BenchmarkUsers compares users.get (one hot key) and users.create with
// baselines measured beside them in the same run (benchload.Compare,
// alternating rounds, fixed counts), in two set-ups:
//
//   - "inproc": the service and the client in this process on an embedded
//     server (in-process connections). users.get is compared with a raw
//     micro handler that decodes the request struct with encoding/json and
//     encodes the response (the honest baseline of BenchmarkEcho).
//   - "deploy": three processes, a nats-server, `switchboard run users`,
//     and this one as the load generator over TCP. users.get is compared
//     with a raw micro echo served by a fourth process (internal/benchecho)
//     on the same server. CPU is reported per process too (client, nats,
//     users, echo: benchload.CompareParts), so that a gap shows where it
//     is spent.
//
// users.create is compared with one plain JetStream publish with a message
// id (the cost of one round trip to the stream) on the same server. In
// "inproc" users.get is also compared with a raw handler that does the
// same JSON work (get-same-json: decode the request, encode the user from
// a map), and measured behind a shared Redis cache (get-cache-redis,
// skipped without redis-server). go test -run '^$'
// -bench Users -benchtime 1x ./services/users/. See docs/performance.md.
func BenchmarkUsers(b *testing.B) {
	envs := map[string]func(*testing.B) *benchEnv{
		"inproc": benchOnce(b, benchStartDev),
		"deploy": benchOnce(b, benchStartDeploy),
	}
	age := 36
	get := func(env *benchEnv) benchload.Side {
		return benchload.Side{Name: "get", Call: func(ctx context.Context) error {
			u, err := contract.GetUser(ctx, env.client, contract.GetRequest{ID: env.userID})
			if err != nil {
				return err
			}
			if u.ID != env.userID {
				return fmt.Errorf("get %s: got user %q", env.userID, u.ID)
			}
			return nil
		}}
	}
	create := func(env *benchEnv) benchload.Side {
		return benchload.Side{Name: "create", Call: func(ctx context.Context) error {
			email := fmt.Sprintf("bench-%d@example.com", env.emails.Add(1))
			_, err := contract.CreateUser(ctx, env.client, contract.CreateRequest{Name: "Bench User", Email: email, Age: &age})
			return err
		}}
	}
	cases := []struct {
		name  string
		where []string
		// cache, when set, runs the case on a server of its own with
		// users.WithCache over that backend ("redis").
		cache string
		c, n  int
		sides func(*testing.B, *benchEnv) (base, ours benchload.Side)
	}{
		{name: "get", where: []string{"inproc", "deploy"}, c: 128, n: 60000, sides: func(_ *testing.B, env *benchEnv) (benchload.Side, benchload.Side) {
			return env.echo, get(env)
		}},
		{name: "get-same-json", where: []string{"inproc"}, c: 128, n: 60000, sides: func(b *testing.B, env *benchEnv) (benchload.Side, benchload.Side) {
			return benchUserFromMap(b, env), get(env)
		}},
		{name: "get-cache-redis", where: []string{"inproc"}, cache: "redis", c: 128, n: 30000, sides: func(_ *testing.B, env *benchEnv) (benchload.Side, benchload.Side) {
			return env.echo, get(env)
		}},
		{name: "create", where: []string{"inproc", "deploy"}, c: 16, n: 9000, sides: func(b *testing.B, env *benchEnv) (benchload.Side, benchload.Side) {
			return benchPublish(b, env.nc), create(env)
		}},
	}
	for _, tc := range cases {
		for _, where := range tc.where {
			b.Run(fmt.Sprintf("%s/%s/c=%d", tc.name, where, tc.c), func(b *testing.B) {
				var env *benchEnv
				if tc.cache == "" {
					env = envs[where](b)
				} else {
					// Started for this case only, and stopped after it.
					var err error
					if env, err = benchStartDevCached(b, tc.cache); err != nil {
						b.Fatal(err)
					}
				}
				var before cache.Stats
				if env.cacheStats != nil {
					before = env.cacheStats()
				}
				base, ours := tc.sides(b, env)
				if env.profile != nil {
					defer env.profile(b)()
				}
				if env.parts != nil {
					benchload.CompareParts(b, tc.c, tc.n, base, ours, env.parts)
				} else {
					benchload.Compare(b, tc.c, tc.n, base, ours, env.cpu)
				}
				if env.cacheStats != nil {
					b.ReportMetric(benchStatsSince(before, env.cacheStats()).HitRatio(), "hit-ratio")
				}
			})
		}
	}
}

// benchUserFromMap is a second baseline of users.get that does the same
// JSON work: a raw micro handler, beside the service, that decodes the
// request struct with encoding/json, looks the user up in a map and
// encodes it, called with a plain request whose reply is decoded into a
// contract.User. What users.get costs beyond it is the typed layer (both
// sides), the store's read of its in-process cache, and the headers.
func benchUserFromMap(b *testing.B, env *benchEnv) benchload.Side {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := contract.GetUser(ctx, env.client, contract.GetRequest{ID: env.userID})
	if err != nil {
		b.Fatal(err)
	}
	byID := map[string]contract.User{u.ID: u}
	const subject = "bench.usermap"
	svc, err := micro.AddService(env.nc, micro.Config{
		Name:    "benchusermap",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			Handler: micro.HandlerFunc(func(r micro.Request) {
				var req contract.GetRequest
				if err := json.Unmarshal(r.Data(), &req); err != nil {
					_ = r.Error("400", err.Error(), nil)
					return
				}
				u, ok := byID[req.ID]
				if !ok {
					_ = r.Error("404", "user not found", nil)
					return
				}
				data, _ := json.Marshal(u)
				_ = r.Respond(data)
			}),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
	req, _ := json.Marshal(contract.GetRequest{ID: env.userID})
	return benchload.Side{Name: "jsonmap", Call: func(ctx context.Context) error {
		reply, err := env.nc.RequestWithContext(ctx, subject, req)
		if err != nil {
			return err
		}
		var got contract.User
		if err := json.Unmarshal(reply.Data, &got); err != nil || got.ID != env.userID {
			return fmt.Errorf("usermap: got %q (%v)", reply.Data, err)
		}
		return nil
	}}
}

// benchPublish is the baseline of users.create: one JetStream publish
// with a message id of a payload the size of a user's created event, to a
// file-store stream of its own on nc's server, waiting for the ack.
func benchPublish(b *testing.B, nc *nats.Conn) benchload.Side {
	b.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	name := fmt.Sprintf("BENCH_PUBLISH_%d", time.Now().UnixNano())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{benchPublishSubject}, Storage: jetstream.FileStorage,
	}); err != nil {
		b.Fatalf("create stream %s: %v", name, err)
	}
	b.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	payload := []byte(`{"type":"user.created","id":"01JBENCH0000000000000000000","occurred_at":"2026-01-01T00:00:00Z",` +
		`"user":{"id":"01JBENCH0000000000000000000","name":"Bench User","email":"bench-1@example.com","age":36,"version":1,` +
		`"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}}`)
	return benchload.Side{Name: "publish", Call: func(ctx context.Context) error {
		_, err := js.Publish(ctx, benchPublishSubject, payload, jetstream.WithMsgID(nuid.Next()))
		return err
	}}
}

// benchSkip is a set-up failure that skips the benchmarks needing it.
type benchSkip struct{ err error }

func (s benchSkip) Error() string { return s.err.Error() }

// benchOnce starts an environment on first use only, so that
// `-bench Users/get/dev` does not build the binary. Whatever start leaves
// running is cleaned up when top ends.
func benchOnce(top *testing.B, start func(top *testing.B) (*benchEnv, error)) func(*testing.B) *benchEnv {
	var (
		env  *benchEnv
		err  error
		done bool
	)
	return func(b *testing.B) *benchEnv {
		b.Helper()
		if !done {
			done = true
			env, err = start(top)
		}
		var skip benchSkip
		switch {
		case errors.As(err, &skip):
			b.Skip(err)
		case err != nil:
			b.Fatal(err)
		}
		return env
	}
}

// benchStartDev runs an embedded server with the users service, with its
// default caches (the in-process one only), and the JSON echo beside it,
// each on its own in-process connection.
func benchStartDev(top *testing.B) (*benchEnv, error) {
	return benchStartDevWith(top, users.Options{})
}

// benchStartDevCached is benchStartDev with a shared cache in front of the
// store and the in-process one off: a redis-server started for top
// ("redis"; skipped without redis-server on PATH).
func benchStartDevCached(top *testing.B, backend string) (*benchEnv, error) {
	var (
		be       cache.Backend
		redisPID string // "" when unknown
	)
	switch backend {
	case "redis":
		r := cachetest.StartRedis(top)
		rb, err := cache.NewRedis(cache.RedisOptions{URL: r.URL()})
		if err != nil {
			return nil, err
		}
		top.Cleanup(func() { _ = rb.Close() })
		be = rb
		redisPID = benchRedisPID(r.Addr)
	default:
		return nil, fmt.Errorf("unknown cache backend %q", backend)
	}
	env, err := benchStartDevWith(top, users.Options{Cache: cache.Config{Backend: be, LocalEntries: -1}})
	if err != nil {
		return nil, err
	}
	env.cacheStats = func() cache.Stats {
		if st := env.svc.CacheStats().Shared; st != nil {
			return *st
		}
		return cache.Stats{}
	}
	if redisPID != "" {
		// Count the redis-server's CPU too, as deploy counts the
		// other processes'.
		env.cpu = func() (time.Duration, bool) {
			self, ok1 := benchload.SelfCPU()
			server, ok2 := benchload.ProcessCPU(redisPID)
			return self + server, ok1 && ok2
		}
	}
	return env, nil
}

// benchRedisPID finds the pid of the redis-server listening on addr
// (host:port) in /proc, or returns "" when it cannot.
func benchRedisPID(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	// redis-server rewrites its command line to "redis-server host:port";
	// before it does, the port follows --port.
	titled := []byte(":" + port + "\x00")
	started := []byte("\x00--port\x00" + port + "\x00")
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		cmd, err := os.ReadFile(p)
		if err == nil && bytes.Contains(cmd, []byte("redis-server")) && (bytes.Contains(cmd, titled) || bytes.Contains(cmd, started)) {
			return filepath.Base(filepath.Dir(p))
		}
	}
	return ""
}

// benchStatsSince is what the cache counted between two readings.
func benchStatsSince(before, after cache.Stats) cache.Stats {
	return cache.Stats{
		Hits:         after.Hits - before.Hits,
		NegativeHits: after.NegativeHits - before.NegativeHits,
		Misses:       after.Misses - before.Misses,
		Loads:        after.Loads - before.Loads,
		Errors:       after.Errors - before.Errors,
		Skipped:      after.Skipped - before.Skipped,
	}
}

// benchStartDevWith runs an embedded server with the users service started
// with opts, and the JSON echo beside it, each on its own in-process
// connection.
func benchStartDevWith(top *testing.B, opts users.Options) (*benchEnv, error) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: top.TempDir()})
	if err != nil {
		return nil, fmt.Errorf("start embedded server: %w", err)
	}
	top.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conns := map[string]*nats.Conn{}
	for _, name := range []string{"bench-users", "bench-echo", "bench-client"} {
		nc, err := srv.Connect(name)
		if err != nil {
			return nil, err
		}
		top.Cleanup(nc.Close)
		conns[name] = nc
	}
	svc, err := users.Start(ctx, conns["bench-users"], opts)
	if err != nil {
		return nil, err
	}
	top.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	if err := benchServeJSONEcho(top, conns["bench-echo"]); err != nil {
		return nil, err
	}
	env, err := benchNewEnv(conns["bench-client"])
	if err != nil {
		return nil, err
	}
	env.echo = benchload.Side{Name: "jsonecho", Call: func(ctx context.Context) error {
		reply, err := env.nc.RequestWithContext(ctx, benchEchoSubject, benchEchoRequest)
		if err != nil {
			return err
		}
		var resp benchEchoMsg
		if err := json.Unmarshal(reply.Data, &resp); err != nil || resp.Text != benchEchoText {
			return fmt.Errorf("echo: got %q (%v)", reply.Data, err)
		}
		return nil
	}}
	env.cpu = benchload.SelfCPU
	env.svc = svc
	return env, nil
}

// benchStartDeploy builds nats-server, switchboard and benchecho, and runs
// them as three processes: the users service and the echo each connect
// over TCP to the nats-server, as does the client in this process.
func benchStartDeploy(top *testing.B) (*benchEnv, error) {
	dir := top.TempDir()
	var bins []string
	for _, pkg := range []string{"github.com/nats-io/nats-server/v2", "github.com/devloop/switchboard/cmd/switchboard", "github.com/devloop/switchboard/internal/benchecho"} {
		bin, err := benchBuild(dir, pkg)
		if err != nil {
			return nil, err
		}
		bins = append(bins, bin)
	}
	ns, url, err := benchStartNATS(top, bins[0], filepath.Join(dir, "nats"))
	if err != nil {
		return nil, err
	}
	sb, profile, err := benchRunUsers(top, bins[1], url, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	echo, err := benchStartProc(top, "benchecho", "ready", bins[2], "-nats-url", url, "-subject", benchEchoSubject)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("bench-client"))
	if err != nil {
		return nil, err
	}
	top.Cleanup(nc.Close)
	env, err := benchNewEnv(nc)
	if err != nil {
		return nil, err
	}
	env.echo = benchload.Side{Name: "echo", Call: func(ctx context.Context) error {
		reply, err := nc.RequestWithContext(ctx, benchEchoSubject, benchEchoRequest)
		if err != nil {
			return err
		}
		if !bytes.Equal(reply.Data, benchEchoRequest) {
			return fmt.Errorf("echo: got %q", reply.Data)
		}
		return nil
	}}
	env.parts = []benchload.Part{
		{Name: "client", CPU: benchload.SelfCPU},
		{Name: "nats", CPU: ns.CPU},
		{Name: "users", CPU: sb.CPU},
		{Name: "echo", CPU: echo.CPU},
	}
	env.profile = profile
	return env, nil
}

// benchSumCPU reads the CPU time of this process and procs together.
func benchSumCPU(procs ...*benchProc) func() (time.Duration, bool) {
	return func() (time.Duration, bool) {
		total, ok := benchload.SelfCPU()
		for _, p := range procs {
			d, pok := benchload.ProcessCPU(p.PID())
			total += d
			ok = ok && pok
		}
		return total, ok
	}
}

// benchEchoRequest is the echo's request, {"text":benchEchoText}.
var benchEchoRequest = []byte(`{"text":"` + benchEchoText + `"}`)

// benchServeJSONEcho serves benchEchoSubject on nc with a plain micro
// endpoint that does by hand what a typed endpoint does: decode the
// request struct with encoding/json, encode the response.
func benchServeJSONEcho(top *testing.B, nc *nats.Conn) error {
	svc, err := benchload.ServeJSONEcho[benchEchoMsg](nc, "benchjsonecho", benchEchoSubject)
	if err != nil {
		return fmt.Errorf("echo service: %w", err)
	}
	top.Cleanup(func() { _ = svc.Stop() })
	return nil
}

// benchNewEnv makes a client on nc and the user that users.get reads.
func benchNewEnv(nc *nats.Conn) (*benchEnv, error) {
	client, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	age := 36
	u, err := contract.CreateUser(ctx, client, contract.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.com", Age: &age})
	if err != nil {
		return nil, fmt.Errorf("create the user to get: %w", err)
	}
	return &benchEnv{client: client, nc: nc, userID: u.ID}, nil
}
