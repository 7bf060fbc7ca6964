package notifications

import (
	"strings"
	"testing"

	"github.com/devloop/switchboard/services/notifications/contract"
)

func TestSealedWebhookRoundTrip(t *testing.T) {
	s, err := newSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h := contract.Webhook{ID: "a", URL: "https://x.example/in", Secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", Subjects: []string{"users.events.*"}}
	data, err := encodeWebhook(s, h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "c2VjcmV0") {
		t.Errorf("stored in clear: %s", data)
	}
	got, err := decodeWebhook(s, "a", data)
	if err != nil || got.Secret != h.Secret {
		t.Errorf("decode = %+v, %v; want the webhook back", got, err)
	}
	// Sealed for webhook a, it does not open as webhook b's.
	if _, err := decodeWebhook(s, "b", data); err == nil {
		t.Error("a sealed secret opened under another webhook's id")
	}
	other, err := newSealer([]byte("another-key-another-key-another!"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeWebhook(other, "a", data); err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("another key: %v, want an error that shows no secret", err)
	}
	// An earlier version's record, secret in clear, is refused, not sent unsigned.
	if _, err := decodeWebhook(s, "a", []byte(`{"id":"a","url":"https://x.example/in","secret":"plain-old-secret","subjects":["users.events.*"]}`)); err == nil {
		t.Error("a record without a sealed secret was accepted")
	}
}
