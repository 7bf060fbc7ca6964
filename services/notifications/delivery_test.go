package notifications_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/cache/cachetest"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/notifications/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// verify checks a request with the Standard Webhooks specification's own
// Go library, as a receiver would, and that tampering with its id, its
// timestamp or its body makes it fail.
func verify(t *testing.T, h hit, secret string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Errorf("the delivery does not verify: %v (headers %v)", err, h.header)
	}
	for name, tamper := range map[string]func(http.Header, []byte) (http.Header, []byte){
		"id": func(hd http.Header, b []byte) (http.Header, []byte) {
			hd.Set(contract.HeaderMsgID, hd.Get(contract.HeaderMsgID)+"x")
			return hd, b
		},
		"timestamp": func(hd http.Header, b []byte) (http.Header, []byte) {
			ts, _ := strconv.ParseInt(hd.Get(contract.HeaderMsgTimestamp), 10, 64)
			hd.Set(contract.HeaderMsgTimestamp, strconv.FormatInt(ts-1, 10))
			return hd, b
		},
		"body": func(hd http.Header, b []byte) (http.Header, []byte) {
			return hd, append(append([]byte(nil), b...), ' ')
		},
	} {
		hd, b := tamper(h.header.Clone(), h.body)
		if err := wh.Verify(b, hd); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("with the %s tampered with: %v, want %v", name, err, standardwebhooks.ErrNoMatchingSignature)
		}
	}
}

func TestDeliversMatchingEventsOnceSigned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	users := newReceiver(t, nil)
	orders := newReceiver(t, nil)
	e.mustPut(t, webhook("users-hook", users.URL+"/hook?token=x", "users.events.*"))
	e.mustPut(t, webhook("orders-hook", orders.URL, "orders.events.*.placed"))

	u := e.createUser(t, "ada")
	hits := users.waitHits(t, 1)
	e.waitFannedOut(t, 1)
	e.waitSettled(t, "users-hook")
	e.waitSettled(t, "orders-hook")

	if got := users.got(); len(got) != 1 {
		t.Fatalf("users receiver got %d requests, want 1", len(got))
	}
	if got := orders.got(); len(got) != 0 {
		t.Errorf("orders receiver got %d requests, want none", len(got))
	}
	h := hits[0]
	verify(t, h, testSecret)
	var ev userscontract.Event
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("body %s: %v", h.body, err)
	}
	if ev.Type != userscontract.EventCreated || ev.User.ID != u.ID || ev.ID == "" {
		t.Errorf("body = %s, want the user.created event of %s", h.body, u.ID)
	}
	for k, want := range map[string]string{
		"Content-Type":           "application/json",
		contract.HeaderEventType: userscontract.EventCreated,
		contract.HeaderMsgID:     ev.ID,
		contract.HeaderWebhookID: "users-hook",
	} {
		if got := h.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestRetriesServerErrorsWithBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	e.mustPut(t, webhook("flaky", rc.URL, "users.events.>"))
	e.createUser(t, "bob")
	hits := rc.waitHits(t, 3)
	e.waitSettled(t, "flaky")
	if got := rc.got(); len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3 (500, 500, 200)", len(got))
	}
	// The backoff doubles (with jitter in [d/2, d)), so the second gap is
	// expected to be longer; scheduling noise makes that only a hint.
	t.Logf("gaps between attempts: %s, %s", hits[1].at.Sub(hits[0].at), hits[2].at.Sub(hits[1].at))
	if id0, id2 := hits[0].header.Get(contract.HeaderMsgID), hits[2].header.Get(contract.HeaderMsgID); id0 != id2 {
		t.Errorf("retries carry event ids %q and %q, want the same", id0, id2)
	}
	if dls := e.deadLetters(t, "flaky"); len(dls) != 0 {
		t.Errorf("dead letters: %+v, want none", dls)
	}
}

func TestClientErrorIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such tenant", http.StatusBadRequest)
	})
	e.mustPut(t, webhook("strict", rc.URL, "users.events.*"))
	u := e.createUser(t, "cy")
	dls := e.waitDeadLetters(t, "strict", 1)
	if got := rc.got(); len(got) != 1 {
		t.Errorf("receiver got %d requests, want 1", len(got))
	}
	dl := dls[0]
	if dl.WebhookID != "strict" || dl.Reason != messaging.ReasonPermanent || dl.Deliveries != 1 ||
		dl.EventType != userscontract.EventCreated || dl.EventSubject != userscontract.EventSubjectPrefix+u.ID || dl.EventID == "" {
		t.Errorf("dead letter = %+v", dl)
	}
	if !strings.Contains(dl.Error, "HTTP 400") || !strings.Contains(dl.Error, "no such tenant") {
		t.Errorf("dead letter error = %q, want the status and the body", dl.Error)
	}
	if all := e.deadLetters(t, ""); len(all) != 1 || all[0].ID != dl.ID {
		t.Errorf("all dead letters = %+v, want the one of strict", all)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	e.mustPut(t, webhook("busy", rc.URL, "users.events.*"))
	e.createUser(t, "dee")
	hits := rc.waitHits(t, 2)
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want at least 1s", gap)
	}
}

func TestHangingReceiverDelaysNoOther(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	release := make(chan struct{})
	stuck := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the receiver and service stop
	healthy := newReceiver(t, nil)
	e.mustPut(t, webhook("stuck", stuck.URL, "users.events.*"))
	e.mustPut(t, webhook("healthy", healthy.URL, "users.events.*"))

	const n = 6 // more than the stuck webhook's workers
	for i := range n {
		e.createUser(t, "user"+strconv.Itoa(i))
	}
	healthy.waitHits(t, n)
	if got := len(stuck.got()); got == 0 || got > notifications.DefaultWorkers {
		t.Errorf("stuck receiver has %d requests in flight, want 1 to %d", got, notifications.DefaultWorkers)
	}
}

func TestReplayDeliversOnceAndClearsTheDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	var fixed atomicBool
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !fixed.get() {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	e.mustPut(t, webhook("broken", rc.URL, "users.events.*"))
	e.createUser(t, "eve")
	dl := e.waitDeadLetters(t, "broken", 1)[0]

	fixed.set()
	resp, err := wire.Call[contract.ReplayRequest, contract.ReplayResponse](t.Context(), e.client,
		contract.SubjectDeadLettersReplay, contract.ReplayRequest{ID: dl.ID})
	if err != nil || resp.Replayed != 1 {
		t.Fatalf("replay %d: %+v, %v", dl.ID, resp, err)
	}
	hits := rc.waitHits(t, 2)
	e.waitSettled(t, "broken")
	if got := rc.got(); len(got) != 2 {
		t.Errorf("receiver got %d requests, want 2 (the 401, the replay)", len(got))
	}
	if hits[1].header.Get(contract.HeaderMsgID) != dl.EventID {
		t.Errorf("replay carries event id %q, want %q", hits[1].header.Get(contract.HeaderMsgID), dl.EventID)
	}
	if dls := e.deadLetters(t, "broken"); len(dls) != 0 {
		t.Errorf("dead letters after replay: %+v, want none", dls)
	}
	_, err = wire.Call[contract.ReplayRequest, contract.ReplayResponse](t.Context(), e.client,
		contract.SubjectDeadLettersReplay, contract.ReplayRequest{ID: dl.ID})
	if codeOf(err) != wire.CodeNotFound {
		t.Errorf("replaying it again: %v, want 404", err)
	}
}

func TestReplayAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	var fixed atomicBool
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !fixed.get() {
			w.WriteHeader(http.StatusGone)
		}
	})
	e.mustPut(t, webhook("gone", rc.URL, "users.events.*"))
	e.createUser(t, "fay")
	e.createUser(t, "gus")
	e.waitDeadLetters(t, "gone", 2)
	fixed.set()
	resp, err := wire.Call[contract.ReplayRequest, contract.ReplayResponse](t.Context(), e.client,
		contract.SubjectDeadLettersReplay, contract.ReplayRequest{WebhookID: "gone", All: true})
	if err != nil || resp.Replayed != 2 {
		t.Fatalf("replay all: %+v, %v", resp, err)
	}
	rc.waitHits(t, 4)
	e.waitDeadLetters(t, "gone", 0)
}

func TestRedeliveredTaskIsNotSentAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	rc := newReceiver(t, nil)
	e.mustPut(t, webhook("once", rc.URL, "users.events.*"))
	u := e.createUser(t, "hal")
	h := rc.waitHits(t, 1)[0]
	e.waitSettled(t, "once")

	// The same task again, as a redelivery or a replay would bring it.
	task := contract.Task{
		WebhookID:    "once",
		EventSubject: userscontract.EventSubjectPrefix + u.ID,
		EventType:    userscontract.EventCreated,
		EventID:      h.header.Get(contract.HeaderMsgID),
		EventTime:    time.Now(),
		Event:        h.body,
	}
	data, _ := json.Marshal(task)
	msg := &nats.Msg{Subject: contract.DeliverySubject("once"), Data: data, Header: nats.Header{}}
	msg.Header.Set("Nats-Msg-Id", "once:again")
	// Only the notifications identity may queue tasks.
	js, err := jetstream.New(connect(t, e.srv, "notifications-task"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(t, "once")
	if got := rc.got(); len(got) != 1 {
		t.Errorf("receiver got %d requests, want 1", len(got))
	}
}

func TestPrivateAddressesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: false})
	rc := newReceiver(t, nil)

	_, err := e.put(t.Context(), webhook("literal", rc.URL, "users.events.*")) // http://127.0.0.1:port
	if codeOf(err) != wire.CodeBadRequest || !hasDetail(err, "url") {
		t.Fatalf("put %s: %v, want 400 with a detail on url", rc.URL, err)
	}
	local := "http://localhost:" + strconv.Itoa(rc.Listener.Addr().(*net.TCPAddr).Port) + "/hook"
	e.mustPut(t, webhook("by-name", local, "users.events.*"))
	e.createUser(t, "ivy")
	dl := e.waitDeadLetters(t, "by-name", 1)[0]
	if dl.Reason != messaging.ReasonPermanent || !strings.Contains(dl.Error, "private address") {
		t.Errorf("dead letter = %+v, want a permanent failure naming the private address", dl)
	}
	if got := rc.got(); len(got) != 0 {
		t.Errorf("receiver got %d requests, want none", len(got))
	}
}

// Redis down (it keeps the "already delivered" marks) does not hold
// deliveries back, nor dead-letter them: they are sent, at least once.
func TestRedisOutageStillDelivers(t *testing.T) {
	r := cachetest.StartRedis(t)
	b, err := cache.NewRedis(cache.RedisOptions{URL: r.URL(), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	e := newEnv(t, notifications.Options{AllowPrivate: true, Cache: cache.Config{Backend: b}, MaxDeliver: 2})
	rc := newReceiver(t, status(http.StatusNoContent))
	e.mustPut(t, webhook("crm", rc.URL, "users.events.*"))
	r.Stop(t)
	e.createUser(t, "Ada")
	e.createUser(t, "Alan")
	rc.waitHits(t, 2)
	if dl := e.deadLetters(t, "crm"); len(dl) != 0 {
		t.Fatalf("%d deliveries dead-lettered during the Redis outage: %+v", len(dl), dl)
	}
}

// Replaying all of a webhook's dead letters replays those there are, once
// each, even when the replays fail again (and are dead-lettered again as
// fast as the walk goes).
func TestReplayAllReplaysEachDeadLetterOnce(t *testing.T) {
	e := newEnv(t, notifications.Options{AllowPrivate: true, MaxDeliver: 1})
	rc := newReceiver(t, status(http.StatusInternalServerError))
	e.mustPut(t, webhook("crm", rc.URL, "users.events.*"))
	const n = 30
	for i := range n {
		e.createUser(t, fmt.Sprintf("user%d", i))
	}
	e.waitDeadLetters(t, "crm", n)
	before := len(rc.got())
	resp, err := contract.ReplayDeadLetters(t.Context(), e.client, contract.ReplayRequest{WebhookID: "crm", All: true})
	if err != nil || resp.Replayed != n {
		t.Fatalf("replay all = %+v, %v; want %d replayed", resp, err, n)
	}
	// Each replay fails once more and is dead-lettered again: n more
	// POSTs, n dead letters, and then nothing.
	e.waitDeadLetters(t, "crm", n)
	rc.waitHits(t, before+n)
	e.waitSettled(t, "crm")
	if got := len(rc.got()) - before; got != n {
		t.Fatalf("replaying %d dead letters made %d POSTs", n, got)
	}
}
