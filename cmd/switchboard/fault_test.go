package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// connectDev connects a client to a running dev, as the banner says.
func connectDev(t *testing.T, b banner) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	if b.natsURL.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(b.natsURL.nkey)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect(b.natsURL.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// kill -9 of `switchboard dev` while 16 callers create users, half of
// them with an email another caller also uses, then a restart on the same
// data: every create that was acknowledged is there, with its email; no
// two users hold one email; no user is half-written (every user listed
// can be read, and every acknowledged user is listed); and the emails of
// the users there are held (docs/guarantees.md).
func TestFaultKill9DuringCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds the binary and kills it")
	}
	dir := t.TempDir()
	natsAddr := testkit.FreeAddr(t)
	args := []string{"dev", "--data-dir", dir, "--nats-listen", natsAddr, "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json"}
	sb := startProcess(t, args...)
	c, err := messaging.NewClient(connectDev(t, sb.banner), messaging.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	const total, workers, emails = 3000, 16, 1500
	var (
		next   atomic.Int64
		mu     sync.Mutex
		acked  = map[string]users.User{} // by id
		killed = make(chan struct{})
		once   sync.Once
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				select {
				case <-killed:
					return
				default:
				}
				age := 30
				u, err := users.CreateUser(context.Background(), c, users.CreateRequest{
					Name: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("u%d@example.com", i%emails), Age: &age})
				if err == nil {
					mu.Lock()
					acked[u.ID] = u
					n := len(acked)
					mu.Unlock()
					if n == total/4 {
						once.Do(func() {
							_ = sb.cmd.Process.Signal(syscall.SIGKILL)
							close(killed)
						})
					}
				}
			}
		})
	}
	wg.Wait()
	<-sb.exited
	if len(acked) < total/4 {
		t.Fatalf("only %d creates acknowledged before the kill", len(acked))
	}

	// Second life, on the same data.
	sb = startProcess(t, args...)
	c, err = messaging.NewClient(connectDev(t, sb.banner), messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	lost := 0
	for id, want := range acked {
		got, err := users.GetUser(ctx, c, users.GetRequest{ID: id})
		if err != nil || got.Email != want.Email {
			lost++
		}
	}
	listed := map[string]users.User{}
	byEmail := map[string]string{}
	dup := 0
	after := ""
	for {
		page, err := users.ListUsers(ctx, c, users.ListRequest{After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			listed[u.ID] = u
			if other, ok := byEmail[u.Email]; ok {
				dup++
				t.Logf("users %s and %s both hold %s", other, u.ID, u.Email)
			}
			byEmail[u.Email] = u.ID
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	half := 0
	for id := range listed {
		if _, err := users.GetUser(ctx, c, users.GetRequest{ID: id}); err != nil {
			half++
		}
	}
	for id := range acked {
		if _, ok := listed[id]; !ok {
			half++
		}
	}
	t.Logf("%d creates acknowledged before kill -9; after the restart: %d users, %d acknowledged unreadable, %d duplicate emails, %d half-written",
		len(acked), len(listed), lost, dup, half)
	if lost != 0 || dup != 0 || half != 0 {
		t.Fatalf("%d acknowledged creates unreadable, %d duplicate emails, %d half-written users", lost, dup, half)
	}
	// Every stored user's email is held: nobody else can sign up with it.
	checked := 0
	for email := range byEmail {
		if checked == 50 {
			break
		}
		checked++
		age := 20
		_, err := users.CreateUser(ctx, c, users.CreateRequest{Name: "Intruder", Email: email, Age: &age})
		if !errors.Is(err, wire.ErrConflict) {
			t.Fatalf("creating another user with %s (held by %s): %v, want 409", email, byEmail[email], err)
		}
	}
}
