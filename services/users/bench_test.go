package users_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/benchload"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// benchEchoSubject is served by a raw micro echo beside the users service,
// the reference the users endpoints are compared with.
const benchEchoSubject = "bench.echo"

// benchEnv is a running users service and a client to call it with.
type benchEnv struct {
	client *messaging.Client
	nc     *nats.Conn   // the client's connection
	userID string       // an existing user, for users.get
	emails atomic.Int64 // numbers the emails of created users
	// cpu is the CPU time used by the processes serving and calling.
	cpu func() (time.Duration, bool)
	// cacheStats, when set, reads the counters of the cache in front of
	// the users store.
	cacheStats func() cache.Stats
	svc        *users.Service // nil when the service runs in another process
}

// BenchmarkUsers measures users.get and users.create, with a raw micro echo
// on the same server for reference, in two set-ups: "dev", the service and
// the client in this process on an embedded server (in-process
// connections), and "external", the service in a separate `switchboard dev`
// process and the client connected over TCP. In "dev" it also measures
// users.get behind users.WithCache over the in-process cache and over a
// redis-server (get-cache-memory, get-cache-redis), each on a server of its
// own. See docs/performance.md.
func BenchmarkUsers(b *testing.B) {
	envs := map[string]func(*testing.B) *benchEnv{
		"dev":      benchOnce(b, benchStartDev),
		"external": benchOnce(b, benchStartExternal),
	}
	// The echo request is 64 bytes of JSON, as in messaging's BenchmarkEcho.
	echo := []byte(`{"text":"hello, switchboard! a small JSON echo payload of 64 b"}`)
	age := 36
	get := func(env *benchEnv) func(context.Context) error {
		return func(ctx context.Context) error {
			u, err := contract.GetUser(ctx, env.client, contract.GetRequest{ID: env.userID})
			if err != nil {
				return err
			}
			if u.ID != env.userID {
				return fmt.Errorf("get %s: got user %q", env.userID, u.ID)
			}
			return nil
		}
	}
	cases := []struct {
		name string
		// cache, when set, runs the case in "dev" only, on a server of its
		// own with users.WithCache over that backend ("memory", "redis").
		cache string
		call  func(env *benchEnv) func(context.Context) error
	}{
		{name: "echo", call: func(env *benchEnv) func(context.Context) error {
			return func(context.Context) error {
				reply, err := env.nc.Request(benchEchoSubject, echo, 5*time.Second)
				if err != nil {
					return err
				}
				if !bytes.Equal(reply.Data, echo) {
					return fmt.Errorf("echo: got %q", reply.Data)
				}
				return nil
			}
		}},
		{name: "get", call: get},
		{name: "get-cache-memory", cache: "memory", call: get},
		{name: "get-cache-redis", cache: "redis", call: get},
		{name: "create", call: func(env *benchEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				email := fmt.Sprintf("bench-%d@example.com", env.emails.Add(1))
				_, err := contract.CreateUser(ctx, env.client, contract.CreateRequest{Name: "Bench User", Email: email, Age: &age})
				return err
			}
		}},
	}
	for _, where := range []string{"dev", "external"} {
		for _, tc := range cases {
			if tc.cache != "" && where != "dev" {
				continue
			}
			b.Run(tc.name+"/"+where, func(b *testing.B) {
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
				call := tc.call(env)
				for _, c := range []int{1, 16, 128} {
					b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
						var before cache.Stats
						if env.cacheStats != nil {
							before = env.cacheStats()
						}
						benchload.Run(b, c, call, env.cpu)
						if env.cacheStats != nil {
							b.ReportMetric(benchStatsSince(before, env.cacheStats()).HitRatio(), "hit-ratio")
						}
					})
				}
			})
		}
	}
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

// benchStartDev runs an embedded server with the users service, without a
// cache, and the echo beside it, each on its own in-process connection.
func benchStartDev(top *testing.B) (*benchEnv, error) {
	return benchStartDevWith(top, users.Options{})
}

// benchStartDevCached is benchStartDev with users.WithCache in front of the
// store, over the in-process cache ("memory") or a redis-server started for
// top ("redis"; skipped without redis-server on PATH).
func benchStartDevCached(top *testing.B, backend string) (*benchEnv, error) {
	var (
		be       cache.Backend
		redisPID string // "" when unknown
	)
	switch backend {
	case "memory":
		be = cache.NewMemory(0)
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
		// Count the redis-server's CPU too, as external counts the
		// switchboard process's.
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
// with opts, and the echo beside it, each on its own in-process connection.
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
	if err := benchServeEcho(top, conns["bench-echo"]); err != nil {
		return nil, err
	}
	env, err := benchNewEnv(conns["bench-client"])
	if err != nil {
		return nil, err
	}
	env.cpu = benchload.SelfCPU
	env.svc = svc
	return env, nil
}

// benchStartExternal builds switchboard, runs `switchboard dev` in a process
// of its own, and connects to it over TCP: the client and an echo service in
// this process, the users service in the other.
func benchStartExternal(top *testing.B) (*benchEnv, error) {
	dir := top.TempDir()
	bin := filepath.Join(dir, "switchboard")
	build := exec.Command("go", "build", "-o", bin, "github.com/devloop/switchboard/cmd/switchboard")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, benchSkip{fmt.Errorf("cannot build switchboard: %w\n%s", err, out)}
	}
	url, pid, err := benchRunDev(top, bin, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	echo, err := nats.Connect(url, nats.Name("bench-echo"))
	if err != nil {
		return nil, err
	}
	top.Cleanup(echo.Close)
	if err := benchServeEcho(top, echo); err != nil {
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
	env.cpu = func() (time.Duration, bool) {
		self, ok1 := benchload.SelfCPU()
		server, ok2 := benchload.ProcessCPU(strconv.Itoa(pid))
		return self + server, ok1 && ok2
	}
	return env, nil
}

// benchRunDev starts `bin dev` on free ports and returns the NATS URL from
// its banner, and its pid. The process is interrupted, and waited for, when
// top ends.
func benchRunDev(top *testing.B, bin, dataDir string) (string, int, error) {
	cmd := exec.Command(bin, "dev", "--data-dir", dataDir,
		"--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-level", "error")
	var stderr bytes.Buffer // read only once the process has exited
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, fmt.Errorf("start switchboard dev: %w", err)
	}
	urls := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			// "  NATS URL:  nats://127.0.0.1:PORT   (try: …)"
			if _, rest, ok := strings.Cut(sc.Text(), "NATS URL:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					urls <- f[0]
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			return err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("switchboard dev did not stop within 15s of SIGINT; killed")
		}
	}
	select {
	case url := <-urls:
		top.Cleanup(func() {
			if err := stop(); err != nil {
				top.Errorf("switchboard dev: %v\n%s", err, stderr.String())
			}
		})
		return url, cmd.Process.Pid, nil
	case err := <-exited:
		return "", 0, fmt.Errorf("switchboard dev exited before it was ready (%v):\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		err := stop()
		return "", 0, fmt.Errorf("switchboard dev printed no NATS URL within 30s (%v):\n%s", err, stderr.String())
	}
}

// benchServeEcho serves benchEchoSubject on nc with a plain micro endpoint
// that answers each request with its own payload.
func benchServeEcho(top *testing.B, nc *nats.Conn) error {
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "benchecho",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: benchEchoSubject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		},
	})
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
