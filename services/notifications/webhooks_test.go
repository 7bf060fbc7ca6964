package notifications_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

func TestPutRejectsInvalidWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	valid := webhook("ok", "https://hooks.example.com/in", "users.events.*")
	tests := []struct {
		name      string
		givenEdit func(*contract.Webhook)
		wantField string
	}{
		{"bad id", func(h *contract.Webhook) { h.ID = "no spaces" }, "id"},
		{"long id", func(h *contract.Webhook) { h.ID = strings.Repeat("a", 65) }, "id"},
		{"ftp url", func(h *contract.Webhook) { h.URL = "ftp://hooks.example.com/in" }, "url"},
		{"url without host", func(h *contract.Webhook) { h.URL = "https:///in" }, "url"},
		{"short secret", func(h *contract.Webhook) { h.Secret = "short" }, "secret"},
		{"bad subject filter", func(h *contract.Webhook) { h.Subjects = []string{"users.ev*"} }, "subjects[0]"},
		{"foreign subject", func(h *contract.Webhook) { h.Subjects = []string{"users.events.*", "payments.events.*"} }, "subjects[1]"},
		{"no subjects", func(h *contract.Webhook) { h.Subjects = nil }, "subjects"},
		{"too many subjects", func(h *contract.Webhook) {
			h.Subjects = slices.Repeat([]string{"users.events.*"}, contract.MaxSubjects+1)
		}, "subjects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := valid
			tt.givenEdit(&h)
			_, err := e.put(t.Context(), h)
			if codeOf(err) != wire.CodeBadRequest || !hasDetail(err, tt.wantField) {
				t.Errorf("put: %v, want 400 with a detail on %s", err, tt.wantField)
			}
		})
	}
	if got := e.list(t).Webhooks; len(got) != 0 {
		t.Errorf("webhooks after invalid puts: %+v, want none", got)
	}
}

func TestListHidesSecretsAndDeleteRemoves(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	h := webhook("crm", "https://crm.example.com/hook", "users.events.*", "orders.events.*.placed")
	h.Description = "CRM sync"
	e.mustPut(t, h)

	reply, err := e.client.Call(t.Context(), contract.SubjectWebhooksList, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(reply.Data), testSecret) || !strings.Contains(string(reply.Data), `"secret_set":true`) {
		t.Errorf("list replied %s: want secret_set and no secret", reply.Data)
	}
	want := contract.View{ID: "crm", URL: h.URL, SecretSet: true, Subjects: h.Subjects, Description: "CRM sync"}
	if got := e.list(t).Webhooks; len(got) != 1 || !viewEqual(got[0], want) {
		t.Errorf("list = %+v, want [%+v]", got, want)
	}

	del, err := contract.DeleteWebhook(t.Context(), e.client, contract.DeleteRequest{ID: "crm"})
	if err != nil || !del.Deleted {
		t.Fatalf("delete crm: %+v, %v", del, err)
	}
	if got := e.list(t).Webhooks; len(got) != 0 {
		t.Errorf("list after delete = %+v, want none", got)
	}
	_, err = contract.DeleteWebhook(t.Context(), e.client, contract.DeleteRequest{ID: "crm"})
	if codeOf(err) != wire.CodeNotFound {
		t.Errorf("delete crm again: %v, want 404", err)
	}
}

func TestDeletedWebhookGetsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notifications.Options{AllowPrivate: true})
	gone := newReceiver(t, nil)
	kept := newReceiver(t, nil)
	e.mustPut(t, webhook("gone", gone.URL, "users.events.*"))
	e.mustPut(t, webhook("kept", kept.URL, "users.events.*"))
	e.createUser(t, "jo")
	gone.waitHits(t, 1)
	if _, err := contract.DeleteWebhook(t.Context(), e.client, contract.DeleteRequest{ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	e.createUser(t, "kim")
	kept.waitHits(t, 2)
	e.waitFannedOut(t, 2)
	e.waitSettled(t, "kept")
	if got := len(gone.got()); got != 1 {
		t.Errorf("deleted webhook got %d requests, want 1 (before its deletion)", got)
	}
}

func TestWebhooksFileLoadedAtStart(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	path := filepath.Join(t.TempDir(), "webhooks.toml")
	file := `
[[webhook]]
id = "from-file"
url = "` + rc.URL + `"
secret = "` + testSecret + `"
subjects = ["users.events.*"]
description = "loaded at start"
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, notifications.Options{AllowPrivate: true, WebhooksFile: path})
	got := e.list(t).Webhooks
	want := contract.View{ID: "from-file", URL: rc.URL, SecretSet: true, Subjects: []string{"users.events.*"}, Description: "loaded at start"}
	if len(got) != 1 || !viewEqual(got[0], want) {
		t.Fatalf("list = %+v, want [%+v]", got, want)
	}
	e.createUser(t, "lou")
	verify(t, rc.waitHits(t, 1)[0], testSecret)
}

func TestWebhooksFileErrorsStopStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, givenFile, wantErr string
	}{
		{"invalid webhook", "[[webhook]]\nid = \"x\"\nurl = \"ftp://a\"\nsecret = \"" + testSecret + "\"\nsubjects = [\"users.events.*\"]\n", "url"},
		{"unknown key", "[[webhook]]\nid = \"x\"\nurl = \"https://a\"\nsecret = \"" + testSecret + "\"\nsubjects = [\"users.events.*\"]\ncolour = \"red\"\n", "colour"},
		{"not toml", "[[webhook", "webhooks file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
			if err := os.WriteFile(path, []byte(tt.givenFile), 0o600); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, notifications.Options{AllowPrivate: true})
			nc := connect(t, e.srv, "second")
			svc, err := notifications.Start(t.Context(), nc, notifications.Options{WebhooksFile: path})
			if err == nil {
				stop(t, "notifications", svc.Stop)
				t.Fatalf("Start with %s: no error", tt.name)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("Start: %v, want an error mentioning %q and not the secret", err, tt.wantErr)
			}
		})
	}
}

func viewEqual(a, b contract.View) bool {
	return a.ID == b.ID && a.URL == b.URL && a.SecretSet == b.SecretSet && a.Description == b.Description && slices.Equal(a.Subjects, b.Subjects)
}
