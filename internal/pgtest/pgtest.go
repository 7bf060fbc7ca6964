// Package pgtest starts real PostgreSQL servers for tests, like httptest
// starts HTTP servers: each test gets its own server (a postgres child
// process on a free loopback port, its data directory a copy of one
// initdb made once per machine), stopped when the test ends.
//
// It finds initdb and postgres on PATH or in /usr/lib/postgresql/*/bin
// (Debian's postgresql package). Without them the test is skipped with an
// install hint, except under CI=true, where that is a failure.
//
// PostgreSQL refuses to run as root. When the tests run as root (CI
// containers do), the servers run as the "postgres" user that Debian's
// package creates (or "nobody"), through the child's process credentials:
// no sudo, runuser or pg_ctlcluster is needed.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/jackc/pgx/v5"
)

// InstallHint says how to get PostgreSQL.
const InstallHint = "apt-get install postgresql (Debian), or put initdb and postgres on PATH"

// Server is a postgres process started for one test.
type Server struct {
	// Port is its TCP port on 127.0.0.1.
	Port    int
	bin     string
	dataDir string
	logPath string
	cred    *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
}

var template struct {
	once sync.Once
	dir  string
	bin  string
	cred *syscall.Credential
	err  error
	skip string
}

// Start starts a server with a fresh data directory, stopped when the test
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	template.once.Do(prepareTemplate)
	if template.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI (.ci/run installs it): %s", template.skip)
		}
		t.Skipf("needs PostgreSQL: %s (%s)", template.skip, InstallHint)
	}
	if template.err != nil {
		t.Fatalf("pgtest: %v", template.err)
	}
	parent, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	if err := chown(parent, template.cred); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		bin:     template.bin,
		dataDir: filepath.Join(parent, "data"),
		logPath: filepath.Join(parent, "postgres.log"),
		cred:    template.cred,
	}
	// cp -a keeps the owner and the 0700 mode postgres insists on.
	if out, err := exec.Command("cp", "-a", template.dir, s.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy template data directory: %v\n%s", err, out)
	}
	_, port, _ := net.SplitHostPort(testkit.FreeAddr(t))
	s.Port, _ = strconv.Atoi(port)
	s.start(t)
	t.Cleanup(func() { s.stop(syscall.SIGQUIT) })
	return s
}

// URL is the connection URL of database db ("" for "postgres").
func (s *Server) URL(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// NewDatabase creates an empty database with a name unique on s and
// returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("test_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}

// Database starts a server for the test and returns the URL of a database
// of its own.
func Database(t testing.TB) string {
	t.Helper()
	return Start(t).URL("")
}

// Stop shuts the server down (a fast shutdown: sessions are ended) and
// waits for it to exit. The port stays unanswered until Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		// A test server holds nothing worth a crash-safe disk.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(s.cred)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL(""))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-exited:
			t.Fatalf("postgres exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres on port %d did not answer within 30s: %v\n%s", s.Port, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("postgres did not stop within 30s; killed")
	}
}

func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// prepareTemplate finds the binaries and makes (once per machine, user and
// version) the data directory every server starts from: initdb takes
// seconds, a copy a fraction of one.
func prepareTemplate() {
	bin, err := findBin()
	if err != nil {
		template.skip = err.Error()
		return
	}
	template.bin = bin
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		template.err = fmt.Errorf("postgres --version: %w", err)
		return
	}
	version := strings.Fields(string(out))
	cred, err := runAs()
	if err != nil {
		template.err = err
		return
	}
	template.cred = cred
	uid := os.Getuid()
	if cred != nil {
		uid = int(cred.Uid)
	}
	base := filepath.Join(os.TempDir(), fmt.Sprintf("switchboard-pgtest-%s-uid%d", version[len(version)-1], uid))
	template.dir = filepath.Join(base, "template")
	if _, err := os.Stat(filepath.Join(template.dir, "PG_VERSION")); err == nil {
		return
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		template.err = err
		return
	}
	if err := chown(base, cred); err != nil {
		template.err = err
		return
	}
	// initdb into a directory of our own, then rename: test binaries of
	// other packages may be doing the same at the same time.
	tmp := filepath.Join(base, fmt.Sprintf("tmp-%d-%d", os.Getpid(), time.Now().UnixNano()))
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", tmp, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.SysProcAttr = sysProcAttr(cred)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(tmp)
		template.err = fmt.Errorf("initdb: %w\n%s", err, out)
		return
	}
	if err := os.Rename(tmp, template.dir); err != nil {
		_ = os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(template.dir, "PG_VERSION")); serr != nil {
			template.err = fmt.Errorf("install template data directory: %w", err)
		}
	}
}

// findBin returns the directory holding initdb and postgres.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first.
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH or in /usr/lib/postgresql/*/bin")
}

// runAs returns the credentials to run postgres with: none unless this is
// root, which postgres refuses to run as.
func runAs() (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and there is neither a postgres nor a nobody user to run postgres as")
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}
