// Package cachetest starts a real redis-server for tests, like httptest
// starts an HTTP server.
package cachetest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/devloop/switchboard/internal/testkit"
)

// Redis is a redis-server process started for one test.
type Redis struct {
	// Addr is host:port on loopback.
	Addr string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port, without
// persistence, and stops it when the test ends. Without redis-server on
// PATH the test is skipped, saying so, except under CI=true, where that is
// a failure: CI must run every test.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI (.ci/run installs it)")
		}
		t.Skip("needs redis-server on PATH (Debian: apt-get install redis-server)")
	}
	addr := testkit.FreeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	r := &Redis{Addr: addr, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer within 10s", r.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Pause stops the process with SIGSTOP: connections hang, as with a stuck
// server.
func (r *Redis) Pause(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume continues a paused process.
func (r *Redis) Resume(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// Stop kills the process; the port stays unanswered.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = r.cmd.Wait()
}

// Restart starts a new process on the same port after Stop.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	bin := r.cmd.Path
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	r.cmd = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}
