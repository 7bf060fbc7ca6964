package notifications_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/notifications/contract"
)

// TestSecretsSealedAndURLsRedacted: the bucket holds the secrets sealed,
// replies show a URL without its credentials and query, and during a
// rotation a delivery verifies with either secret.
func TestSecretsSealedAndURLsRedacted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	rc := newReceiver(t, nil)
	const previous = "whsec_cHJldmlvdXMtcHJldmlvdXMtcHJldmlvdXMh"
	w := webhook("rot", strings.Replace(rc.URL, "http://", "http://bob:pw-s3cret@", 1)+"/in?token=tok-s3cret", "users.events.*")
	w.PreviousSecret = previous
	view, err := e.put(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	list := e.list(t)
	for what, v := range map[string]contract.View{"put": view, "list": list.Webhooks[0]} {
		if strings.Contains(v.URL, "s3cret") || !strings.HasSuffix(v.URL, "/in?xxxxx") || !strings.Contains(v.URL, "xxxxx@") {
			t.Errorf("%s shows the URL %q, want its credentials and query masked", what, v.URL)
		}
		if !v.SecretSet || !v.PreviousSecretSet {
			t.Errorf("%s = %+v, want secret_set and previous_secret_set", what, v)
		}
	}

	// Reading the bucket, as only notifications may, reveals no secret.
	js, err := jetstream.New(connect(t, e.srv, "notifications-reader"))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), contract.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kv.Get(t.Context(), "rot")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testSecret, strings.TrimPrefix(testSecret, contract.SecretPrefix), previous, strings.TrimPrefix(previous, contract.SecretPrefix)} {
		if strings.Contains(string(raw.Value()), secret) {
			t.Errorf("the bucket holds a secret in clear: %s", raw.Value())
		}
	}

	e.createUser(t, "rotating")
	h := rc.waitHits(t, 1)[0]
	verify(t, h, testSecret)
	verify(t, h, previous)
	if n := len(strings.Fields(h.header.Get(contract.HeaderMsgSignature))); n != 2 {
		t.Errorf("%s has %d signatures, want 2 during a rotation", contract.HeaderMsgSignature, n)
	}
}

// TestStartNeedsEncryptionKey: without a key nothing is stored in clear.
func TestStartNeedsEncryptionKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	_, err := notifications.Start(t.Context(), connect(t, e.srv, "second"), notifications.Options{EncryptionKey: []byte{}})
	if err == nil || !strings.Contains(err.Error(), "webhook-encryption-key") {
		t.Errorf("Start without a key: %v, want an error naming webhook-encryption-key", err)
	}
}
