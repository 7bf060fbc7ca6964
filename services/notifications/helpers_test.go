package notifications_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/services/users"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// testSecret is a Standard Webhooks secret: whsec_ and 24 bytes, base64.
const testSecret = "whsec_czNjcmV0LXMzY3JldC1zM2NyZXQtczNjcmV0"

// testKey encrypts the webhooks' secrets in the tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// env is one test's world: an embedded server, the real users service (the
// source of events), a notifications service and a client, each on its
// own connection.
type env struct {
	srv    *embedded.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	client *messaging.Client
	svc    *notifications.Service
}

// newEnv starts everything; opts tune the notifications service. Unless
// given, the options have private addresses allowed (the receivers are on
// loopback), the in-process cache and quick retries.
func newEnv(t *testing.T, opts notifications.Options) *env {
	t.Helper()
	srv := embeddedtest.StartSecure(t, t.TempDir(), model())
	us, err := users.Start(context.Background(), connect(t, srv, "users"), users.Options{})
	if err != nil {
		t.Fatalf("start users: %v", err)
	}
	t.Cleanup(func() { stop(t, "users", us.Stop) })
	if opts.RetryBase == 0 {
		opts.RetryBase = 20 * time.Millisecond
	}
	svc := startNotifications(t, connect(t, srv, "notifications"), opts)
	nc := connect(t, srv, "client")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js, client: c, svc: svc}
}

func startNotifications(t *testing.T, nc *nats.Conn, opts notifications.Options) *notifications.Service {
	t.Helper()
	if opts.EncryptionKey == nil {
		opts.EncryptionKey = testKey
	}
	svc, err := notifications.Start(context.Background(), nc, opts)
	if err != nil {
		t.Fatalf("start notifications: %v", err)
	}
	t.Cleanup(func() { stop(t, "notifications", svc.Stop) })
	return svc
}

func stop(t *testing.T, name string, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		t.Errorf("stop %s: %v", name, err)
	}
}

// model is what the tests run under: the services' own NATS permissions,
// and the client role's for callers (docs/security.md).
func model() natsauth.Model { return natsauth.NewModel(users.Access(), notifications.Access()) }

// connect connects as the identity name starts with: users, client or
// operator; anything else (a second replica) as notifications.
func connect(t *testing.T, srv *embedded.Server, name string) *nats.Conn {
	t.Helper()
	user := notifications.Access().User
	for _, id := range []string{users.Access().User, natsauth.ClientUser, natsauth.OperatorUser} {
		if strings.HasPrefix(name, id) {
			user = id
		}
	}
	g, _ := model().Grant(user)
	return embeddedtest.ConnectAs(t, srv, g, t.Name()+"/"+name)
}

// hit is one request a receiver got.
type hit struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is an httptest server that records what it gets and answers
// with respond (200 when nil) for the nth request (0-based).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.hits)
		rc.hits = append(rc.hits, hit{at: time.Now(), header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// waitHits waits until rc has at least n requests and returns them.
func (rc *receiver) waitHits(t *testing.T, n int) []hit {
	t.Helper()
	var hits []hit
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if hits = rc.got(); len(hits) < n {
			return fmt.Errorf("receiver got %d requests, want %d", len(hits), n)
		}
		return nil
	})
	return hits
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func webhook(id, url string, subjects ...string) contract.Webhook {
	return contract.Webhook{ID: id, URL: url, Secret: testSecret, Subjects: subjects}
}

func (e *env) put(ctx context.Context, h contract.Webhook) (contract.View, error) {
	return contract.PutWebhook(ctx, e.client, h)
}

func (e *env) mustPut(t *testing.T, h contract.Webhook) {
	t.Helper()
	if _, err := e.put(t.Context(), h); err != nil {
		t.Fatalf("put webhook %s: %v", h.ID, err)
	}
}

func (e *env) list(t *testing.T) contract.ListResponse {
	t.Helper()
	resp, err := wire.Call[contract.ListRequest, contract.ListResponse](t.Context(), e.client, contract.SubjectWebhooksList, contract.ListRequest{})
	if err != nil {
		t.Fatalf("list webhooks: %v", err)
	}
	return resp
}

func (e *env) deadLetters(t *testing.T, webhookID string) []contract.DeadLetter {
	t.Helper()
	resp, err := wire.Call[contract.DeadLettersRequest, contract.DeadLettersResponse](t.Context(), e.client,
		contract.SubjectDeadLettersList, contract.DeadLettersRequest{WebhookID: webhookID})
	if err != nil {
		t.Fatalf("list dead letters: %v", err)
	}
	return resp.DeadLetters
}

// waitDeadLetters waits until webhookID has n dead letters.
func (e *env) waitDeadLetters(t *testing.T, webhookID string, n int) []contract.DeadLetter {
	t.Helper()
	var dls []contract.DeadLetter
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if dls = e.deadLetters(t, webhookID); len(dls) != n {
			return fmt.Errorf("%d dead letters of %s, want %d", len(dls), webhookID, n)
		}
		return nil
	})
	return dls
}

func (e *env) createUser(t *testing.T, name string) userscontract.User {
	t.Helper()
	age := 30
	u, err := userscontract.CreateUser(t.Context(), e.client, userscontract.CreateRequest{Name: name, Email: name + "@example.com", Age: &age})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// waitSettled waits until webhook id's delivery consumer has nothing
// pending or unacknowledged: every task published so far was handled.
func (e *env) waitSettled(t *testing.T, id string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := e.js.Consumer(t.Context(), contract.Stream, contract.Consumer(id))
		if err != nil {
			return err
		}
		ci, err := info.Info(t.Context())
		if err != nil {
			return err
		}
		if ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("consumer %s: %d pending, %d unacknowledged", ci.Name, ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// waitFannedOut waits until the users fan-out consumer handled n events.
func (e *env) waitFannedOut(t *testing.T, n uint64) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		stats, err := wire.Call[struct{}, map[string]messaging.ConsumerStats](t.Context(), e.client, contract.ServiceName+".consumers", struct{}{})
		if err != nil {
			return err
		}
		if got := stats[notifications.UsersFanOutConsumer].Handled; got < n {
			return fmt.Errorf("fan-out handled %d events, want %d", got, n)
		}
		return nil
	})
}

// codeOf returns the status code of err, or 0.
func codeOf(err error) int {
	var e *wire.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
