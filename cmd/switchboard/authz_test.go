package main

// The authorization suite: a real nats-server running the configuration
// `switchboard nats-config` ships (TLS required, one nkey user per
// identity), the real services on it as their own users, and every case of
// docs/security.md tried as the identity it names. A refused case must be
// refused by the server (a permissions violation, or no connection); an
// allowed one must succeed.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/notifications"
	notifcontract "github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/services/orders"
	orderscontract "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// authzWorld is the server of the shipped configuration and what it takes
// to connect to it.
type authzWorld struct {
	srv    *embedded.Server
	keyDir string
	caFile string
	model  natsauth.Model
}

// startAuthzWorld writes the production configuration with nats-config
// (TLS with a CA made here), runs it, and starts users, orders and
// notifications on it as their own users.
func startAuthzWorld(t *testing.T) *authzWorld {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile := testCertificates(t, dir)
	out := filepath.Join(dir, "nats")
	if err := natsConfigCommand([]string{"--out", out, "--tls-cert", certFile, "--tls-key", keyFile}, io.Discard); err != nil {
		t.Fatalf("nats-config: %v", err)
	}
	conf, err := os.ReadFile(filepath.Join(out, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Config: string(conf)})
	if err != nil {
		t.Fatalf("start the shipped configuration: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	w := &authzWorld{srv: srv, keyDir: out, caFile: caFile, model: accessModel()}

	us, err := users.Start(t.Context(), w.conn(t, "users"), users.Options{})
	if err != nil {
		t.Fatalf("users as its own user: %v", err)
	}
	t.Cleanup(func() { _ = us.Stop(context.Background()) })
	os_, err := orders.Start(t.Context(), w.conn(t, "orders"), orders.Options{})
	if err != nil {
		t.Fatalf("orders as its own user: %v", err)
	}
	t.Cleanup(func() { _ = os_.Stop(context.Background()) })
	ns, err := notifications.Start(t.Context(), w.conn(t, "notifications"), notifications.Options{EncryptionKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("notifications as its own user: %v", err)
	}
	t.Cleanup(func() { _ = ns.Stop(context.Background()) })
	return w
}

// dial connects over TCP and TLS as user, with its key and inbox prefix.
func (w *authzWorld) dial(user string, extra ...nats.Option) (*nats.Conn, error) {
	g, ok := w.model.Grant(user)
	if !ok {
		return nil, fmt.Errorf("no identity %s", user)
	}
	keys, err := natsauth.LoadKeys(w.keyDir, []string{user})
	if err != nil {
		return nil, err
	}
	opts, err := keys.ConnectOptions(g)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.RootCAs(w.caFile), nats.Name("authz/"+user))
	return nats.Connect(w.srv.ClientURL(), append(opts, extra...)...)
}

func (w *authzWorld) conn(t *testing.T, user string) *nats.Conn {
	t.Helper()
	nc, err := w.dial(user)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// errRefused is a permissions violation the server reported.
var errRefused = errors.New("refused by the server")

// try runs op on a fresh connection of user and says whether the server
// let it through: errRefused on a permissions violation (reported
// asynchronously for publishes and subscriptions), op's own error if it
// failed otherwise.
func (w *authzWorld) try(t *testing.T, user string, op func(ctx context.Context, nc *nats.Conn) error) error {
	t.Helper()
	violations := make(chan error, 8)
	nc, err := w.dial(user, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			violations <- err
		}
	}))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx, nc) }()
	select {
	case v := <-violations:
		return fmt.Errorf("%w: %v", errRefused, v)
	case err := <-done:
		if errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("%w: %v", errRefused, err)
		}
		if err != nil {
			return err
		}
		// A subscription is refused after its flush: give the server's
		// answer the round trip of a ping to arrive. The read loop records
		// the -ERR (LastError) before it handles the PONG; the error
		// handler runs later, on nats.go's callback goroutine.
		if ferr := nc.FlushTimeout(time.Second); ferr != nil {
			return ferr
		}
		if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("%w: %v", errRefused, err)
		}
		select {
		case v := <-violations:
			return fmt.Errorf("%w: %v", errRefused, v)
		default:
			return nil
		}
	}
}

// Operations the cases are made of.

func jsPublish(subject string, data []byte) func(context.Context, *nats.Conn) error {
	return func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.Publish(ctx, subject, data)
		return err
	}
}

func subscribe(subject string) func(context.Context, *nats.Conn) error {
	return func(_ context.Context, nc *nats.Conn) error {
		_, err := nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		return nc.Flush()
	}
}

func request(subject string, body string) func(context.Context, *nats.Conn) error {
	return func(ctx context.Context, nc *nats.Conn) error {
		_, err := nc.RequestWithContext(ctx, subject, []byte(body))
		return err
	}
}

func withJS(fn func(ctx context.Context, js jetstream.JetStream) error) func(context.Context, *nats.Conn) error {
	return func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		return fn(ctx, js)
	}
}

func purge(stream string) func(context.Context, *nats.Conn) error {
	return withJS(func(ctx context.Context, js jetstream.JetStream) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		err = s.Purge(ctx)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == 10110 {
			// The stream denies purges: refused by the server too.
			return fmt.Errorf("%w: %v", errRefused, err)
		}
		return err
	})
}

func readBucket(bucket, key string) func(context.Context, *nats.Conn) error {
	return func(ctx context.Context, nc *nats.Conn) error {
		// A direct get, as a bucket read is.
		_, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET.KV_"+bucket+".$KV."+bucket+"."+key, nil)
		return err
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	w := startAuthzWorld(t)
	client := w.conn(t, natsauth.ClientUser)
	c, err := messaging.NewClient(client, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	age := 36
	ada, err := contract.CreateUser(t.Context(), c, contract.CreateRequest{Name: "Ada", Email: "ada@example.com", Age: &age})
	if err != nil {
		t.Fatalf("users.create as the client role: %v", err)
	}
	if _, err := notifcontract.PutWebhook(t.Context(), c, notifcontract.Webhook{
		ID: "w1", URL: "https://hooks.example.com/in", Secret: "whsec_" + strings.Repeat("A", 32), Subjects: []string{"users.events.*"},
	}); err != nil {
		t.Fatalf("webhooks.put as the client role: %v", err)
	}
	forged, _ := json.Marshal(contract.Event{Type: contract.EventDeleted, ID: "forged", OccurredAt: time.Now(), User: ada})

	type tc struct {
		name    string
		user    string
		op      func(context.Context, *nats.Conn) error
		allowed bool
	}
	cases := []tc{
		// Forging events on each stream.
		{"client forges user.deleted on USERS", natsauth.ClientUser, jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"orders forges a user event", "orders", jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"notifications forges a user event", "notifications", jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"gateway forges a user event", "gateway", jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"operator forges a user event", natsauth.OperatorUser, jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"projector forges a user event", "projector", jsPublish(contract.EventSubjectPrefix+ada.ID, forged), false},
		{"client writes a users fence", natsauth.ClientUser, jsPublish("users.fence."+ada.ID, nil), false},
		{"client forges order.placed on ORDERS", natsauth.ClientUser, jsPublish(orderscontract.EventSubject("x", orderscontract.EventPlaced), []byte("{}")), false},
		{"users forges an order event", "users", jsPublish(orderscontract.EventSubject("x", orderscontract.EventPlaced), []byte("{}")), false},
		{"client queues a delivery task", natsauth.ClientUser, jsPublish(notifcontract.DeliverySubject("w1"), []byte("{}")), false},
		{"orders queues a delivery task", "orders", jsPublish(notifcontract.DeliverySubject("w1"), []byte("{}")), false},
		{"client writes a dead letter", natsauth.ClientUser, jsPublish(messaging.DeadLetterSubject("USERS", "orders-on-user-events"), nil), false},
		{"users writes orders' dead letter", "users", jsPublish(messaging.DeadLetterSubject("USERS", "orders-on-user-events"), nil), false},
		// Another service's bucket.
		{"client reads the webhooks bucket", natsauth.ClientUser, readBucket(notifcontract.Bucket, "w1"), false},
		{"orders reads the webhooks bucket", "orders", readBucket(notifcontract.Bucket, "w1"), false},
		{"operator reads the webhooks bucket", natsauth.OperatorUser, readBucket(notifcontract.Bucket, "w1"), false},
		{"gateway watches the webhooks bucket", "gateway", withJS(func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "KV_"+notifcontract.Bucket, jetstream.ConsumerConfig{})
			return err
		}), false},
		{"users writes the webhooks bucket", "users", jsPublish("$KV."+notifcontract.Bucket+".w1", []byte("{}")), false},
		// Purging and deleting.
		{"client purges USERS", natsauth.ClientUser, purge(contract.Stream), false},
		{"client purges ORDERS", natsauth.ClientUser, purge(orderscontract.Stream), false},
		{"users purges USERS", "users", purge(contract.Stream), false},
		{"operator purges USERS (DenyPurge)", natsauth.OperatorUser, purge(contract.Stream), false},
		{"client deletes USERS", natsauth.ClientUser, request("$JS.API.STREAM.DELETE."+contract.Stream, ""), false},
		{"orders deletes USERS", "orders", request("$JS.API.STREAM.DELETE."+contract.Stream, ""), false},
		{"users deletes ORDERS", "users", request("$JS.API.STREAM.DELETE."+orderscontract.Stream, ""), false},
		{"client deletes a message of USERS", natsauth.ClientUser, request("$JS.API.STREAM.MSG.DELETE."+contract.Stream, `{"seq":1}`), false},
		{"client deletes orders' durable consumer", natsauth.ClientUser, request("$JS.API.CONSUMER.DELETE.USERS."+orders.UserEventsConsumer, ""), false},
		{"client pulls from orders' durable consumer", natsauth.ClientUser, request("$JS.API.CONSUMER.MSG.NEXT.USERS."+orders.UserEventsConsumer, `{"batch":1}`), false},
		{"users redefines orders' durable consumer", "users", withJS(func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateConsumer(ctx, contract.Stream, jetstream.ConsumerConfig{Durable: orders.UserEventsConsumer, FilterSubject: "users.internal.>"})
			return err
		}), false},
		// Another identity's inbox, and its endpoints.
		{"client subscribes to users' inbox", natsauth.ClientUser, subscribe(natsauth.InboxPrefix("users") + ".>"), false},
		{"orders subscribes to users' inbox", "orders", subscribe(natsauth.InboxPrefix("users") + ".>"), false},
		{"gateway subscribes to the client's inbox", "gateway", subscribe(natsauth.ClientInbox + ".>"), false},
		{"client subscribes to everything", natsauth.ClientUser, subscribe(">"), false},
		{"client serves users.get", natsauth.ClientUser, subscribe(contract.SubjectGet), false},
		{"client answers service discovery", natsauth.ClientUser, subscribe("$SRV.PING"), false},
		{"users calls orders.create", "users", request(orderscontract.SubjectCreate, "{}"), false},
		{"orders calls users.delete", "orders", request(contract.SubjectDelete, "{}"), false},

		// What each identity needs.
		{"client calls users.get", natsauth.ClientUser, request(contract.SubjectGet, fmt.Sprintf(`{"id":%q}`, ada.ID)), true},
		{"client discovers the services", natsauth.ClientUser, request("$SRV.PING", ""), true},
		{"client reads USERS with a consumer of its own", natsauth.ClientUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			cons, err := js.OrderedConsumer(ctx, contract.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{contract.EventSubjects}})
			if err != nil {
				return err
			}
			_, err = cons.Next(jetstream.FetchMaxWait(2 * time.Second))
			return err
		}), true},
		{"client adds and pulls a durable of its own on ORDERS", natsauth.ClientUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			cons, err := js.CreateOrUpdateConsumer(ctx, orderscontract.Stream, jetstream.ConsumerConfig{Durable: "mine", FilterSubject: orderscontract.EventSubjects})
			if err != nil {
				return err
			}
			_, err = cons.Info(ctx)
			return err
		}), true},
		{"client reads a user's last event", natsauth.ClientUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			_, err := messaging.LastMsg(ctx, js, contract.Stream, contract.EventSubjectPrefix+ada.ID)
			return err
		}), true},
		{"client reads the dead letters", natsauth.ClientUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.Stream(ctx, messaging.DefaultDeadLetterStream)
			return err
		}), true},
		{"client lists the streams", natsauth.ClientUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			for range js.ListStreams(ctx).Info() {
			}
			return nil
		}), true},
		{"users writes its own stream", "users", jsPublish("users.internal.authz-probe", nil), true},
		{"orders calls users.get", "orders", request(contract.SubjectGet, fmt.Sprintf(`{"id":%q}`, ada.ID)), true},
		{"orders reads USERS by message get", "orders", withJS(func(ctx context.Context, js jetstream.JetStream) error {
			_, err := messaging.LastMsg(ctx, js, contract.Stream, contract.EventSubjectPrefix+ada.ID)
			return err
		}), true},
		{"notifications reads its bucket", "notifications", withJS(func(ctx context.Context, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, notifcontract.Bucket)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, "w1")
			return err
		}), true},
		{"gateway calls users.get", "gateway", request(contract.SubjectGet, fmt.Sprintf(`{"id":%q}`, ada.ID)), true},
		{"gateway discovers the services", "gateway", request("$SRV.INFO", ""), true},
		{"operator edits USERS", natsauth.OperatorUser, withJS(func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, contract.Stream)
			if err != nil {
				return err
			}
			_, err = js.UpdateStream(ctx, s.CachedInfo().Config)
			return err
		}), true},
		{"operator purges NOTIFICATIONS", natsauth.OperatorUser, purge(notifcontract.Stream), true},
	}

	// The client calls every endpoint the running services announce.
	for _, ep := range announcedEndpoints(t, client) {
		cases = append(cases, tc{"client calls " + ep, natsauth.ClientUser, request(ep, "{}"), true})
	}

	var mu sync.Mutex
	counts := map[bool]int{}
	t.Cleanup(func() { t.Logf("authorization cases: %d allowed, %d refused", counts[true], counts[false]) })
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := w.try(t, tt.user, tt.op)
			mu.Lock()
			counts[tt.allowed]++
			mu.Unlock()
			switch {
			case tt.allowed && err != nil:
				t.Errorf("%s: %v, want it allowed", tt.user, err)
			case !tt.allowed && !errors.Is(err, errRefused):
				t.Errorf("%s: %v, want it refused by the server", tt.user, err)
			}
		})
	}

	// The forged user.deleted changed nothing.
	got, err := contract.GetUser(t.Context(), c, contract.GetRequest{ID: ada.ID})
	if err != nil || got != ada {
		t.Errorf("users.get after the forgery attempts = %+v, %v; want %+v", got, err, ada)
	}
}

// TestAuthenticationRequired: no connection without a known key, nor in
// plaintext to the TLS-only server, nor to a server it cannot verify.
func TestAuthenticationRequired(t *testing.T) {
	t.Parallel()
	w := startAuthzWorld(t)
	t.Run("anonymous", func(t *testing.T) {
		nc, err := nats.Connect(w.srv.ClientURL(), nats.RootCAs(w.caFile))
		if err == nil {
			nc.Close()
			t.Fatal("an anonymous client connected")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("err = %v, want an authorization violation", err)
		}
	})
	t.Run("unknown nkey", func(t *testing.T) {
		keys, err := natsauth.GenerateKeys([]string{"stranger"})
		if err != nil {
			t.Fatal(err)
		}
		opts, err := keys.ConnectOptions(natsauth.Grant{User: "stranger"})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(w.srv.ClientURL(), append(opts, nats.RootCAs(w.caFile))...)
		if err == nil {
			nc.Close()
			t.Fatal("an unknown nkey connected")
		}
	})
	t.Run("plaintext to a TLS-only server", func(t *testing.T) {
		// nats.go upgrades to TLS whenever the server asks; a client that
		// does not is a raw one.
		conn, err := net.DialTimeout("tcp", w.srv.Addr(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		info := make([]byte, 4096)
		n, _ := conn.Read(info)
		if !strings.Contains(string(info[:n]), `"tls_required":true`) {
			t.Errorf("INFO does not require TLS: %s", info[:n])
		}
		if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
			return // refused already
		}
		reply, _ := io.ReadAll(conn)
		if strings.Contains(string(reply), "PONG") {
			t.Errorf("the server answered a plaintext client: %q", reply)
		}
	})
	t.Run("server not trusted", func(t *testing.T) {
		other, _, _ := testCertificates(t, t.TempDir())
		nc, err := w.dial(natsauth.ClientUser, nats.RootCAs(other))
		if err == nil {
			nc.Close()
			t.Fatal("connected to a server whose certificate no trusted CA signed")
		}
	})
	t.Run("the client role with its key", func(t *testing.T) {
		nc, err := w.dial(natsauth.ClientUser)
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
	})
}

// announcedEndpoints asks $SRV.INFO as nc and returns every endpoint
// subject announced.
func announcedEndpoints(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	sub, err := nc.SubscribeSync(nc.NewRespInbox())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.INFO", sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		msg, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			t.Fatal(err)
		}
		for _, ep := range info.Endpoints {
			out = append(out, ep.Subject)
		}
	}
	if len(out) < 15 {
		t.Fatalf("$SRV.INFO announced %d endpoints: %q", len(out), out)
	}
	return out
}

// testCertificates writes a CA and a server certificate for 127.0.0.1 it
// signed into dir, and returns the three PEM files.
func testCertificates(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", leafDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}
