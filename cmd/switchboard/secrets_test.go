package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/testkit"
	notifcontract "github.com/devloop/switchboard/services/notifications/contract"
)

// planted is the secret every secret setting and webhook URL gets in the
// secrets test: it must show nowhere.
const planted = "pl4nted-S3CRET-value"

// plantedKey is a webhook encryption key whose base64 holds planted.
var plantedKey = base64.StdEncoding.EncodeToString([]byte(planted + strings.Repeat("k", 32-len(planted))))

// plantedWebhookSecret is a whsec_ secret: its key and its text are secret.
var plantedWebhookSecret = notifcontract.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(planted+"-webhook-key"))

// noSecret fails the test if what holds the planted secret (or the
// webhook secret or encryption key made from it).
func noSecret(t *testing.T, where, what string) {
	t.Helper()
	for _, s := range []string{planted, plantedKey, plantedWebhookSecret, strings.TrimPrefix(plantedWebhookSecret, notifcontract.SecretPrefix)} {
		if strings.Contains(what, s) {
			t.Errorf("the planted secret shows in %s:\n%s", where, what)
			return
		}
	}
}

// TestSecretsNeverShown plants a known secret in every secret setting and
// in a webhook URL, and drives what shows things: the config command,
// start-up failures, a NATS outage, failed webhook deliveries, their dead
// letters and the webhooks' replies. The secret is in none of them.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	secretEnv := map[string]string{
		"SWITCHBOARD_NATS_URL":               "nats://ada:" + planted + "@127.0.0.1:4222",
		"SWITCHBOARD_NATS_USER":              "ada",
		"SWITCHBOARD_NATS_PASSWORD":          planted,
		"SWITCHBOARD_REDIS_URL":              "redis://:" + planted + "@127.0.0.1:1/0",
		"SWITCHBOARD_POSTGRES_URL":           "postgres://sb:" + planted + "@127.0.0.1:1/sb",
		"SWITCHBOARD_GATEWAY_API_KEYS":       "ci=" + planted + planted,
		"SWITCHBOARD_GATEWAY_JWT_SECRET":     planted + planted,
		"SWITCHBOARD_WEBHOOK_ENCRYPTION_KEY": plantedKey,
	}
	runOnce := func(t *testing.T, env map[string]string, timeout time.Duration, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		var stdout, stderr syncBuffer
		err := run(ctx, append([]string{"switchboard"}, args...), fakeEnv(env), &stdout, &stderr)
		all := stdout.String() + stderr.String()
		if err != nil {
			all += "\nerror: " + err.Error()
		}
		return all, err
	}

	t.Run("config", func(t *testing.T) {
		out, err := runOnce(t, secretEnv, 5*time.Second, "config")
		if err != nil {
			t.Fatalf("config: %v\n%s", err, out)
		}
		noSecret(t, "switchboard config", out)
		tokenEnv := map[string]string{"SWITCHBOARD_NATS_URL": "nats://" + planted + "@127.0.0.1:4222", "SWITCHBOARD_NATS_TOKEN": planted}
		out, err = runOnce(t, tokenEnv, 5*time.Second, "config")
		if err != nil {
			t.Fatalf("config: %v\n%s", err, out)
		}
		noSecret(t, "switchboard config with a token", out)
	})
	t.Run("bad settings", func(t *testing.T) {
		for _, env := range []map[string]string{
			{"SWITCHBOARD_WEBHOOK_ENCRYPTION_KEY": planted},
			{"SWITCHBOARD_GATEWAY_JWT_SECRET": planted[:10]},
			{"SWITCHBOARD_GATEWAY_API_KEYS": "ci=" + planted[:10]},
			{"SWITCHBOARD_REDIS_URL": "redis://:" + planted + "@h:99999/0"},
		} {
			out, err := runOnce(t, env, 5*time.Second, "config")
			if err == nil {
				t.Errorf("config with %v: no error", env)
			}
			noSecret(t, "a refused setting", out)
		}
	})
	t.Run("NATS unreachable at start", func(t *testing.T) {
		for _, url := range []string{"nats://ada:" + planted + "@127.0.0.1:1", "nats://" + planted + "@127.0.0.1:1"} {
			out, err := runOnce(t, map[string]string{"SWITCHBOARD_NATS_URL": url, "SWITCHBOARD_WEBHOOK_ENCRYPTION_KEY": plantedKey},
				1500*time.Millisecond, "run", "notifications", "--http-listen", "127.0.0.1:0", "--shutdown-timeout", "1s")
			if err == nil {
				t.Errorf("run with NATS unreachable: no error")
			}
			if !strings.Contains(out, "nats not reachable yet") {
				t.Errorf("no retry logged:\n%s", out)
			}
			noSecret(t, "a start-up without NATS", out)
		}
	})
	t.Run("NATS outage", func(t *testing.T) {
		srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		// No auth on this server: it takes any password, enough to see
		// where the URL is shown.
		url := strings.Replace(srv.ClientURL(), "nats://", "nats://ada:"+planted+"@", 1)
		sb := startRun(t, "run", "users", "--nats-url", url, "--http-listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "1s")
		sb.waitReady(t)
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(sb.stderr.String(), "nats disconnected") {
				return errors.New("no disconnect logged yet")
			}
			return nil
		})
		err = sb.stop(t)
		all := sb.stdout.String() + sb.stderr.String()
		if err != nil {
			all += err.Error()
		}
		noSecret(t, "a NATS outage", all)
	})
	t.Run("failed webhook deliveries", func(t *testing.T) {
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no thanks", http.StatusBadRequest)
		}))
		t.Cleanup(recv.Close)
		sb := startRun(t, devArgs(t.TempDir(), "--log-level", "debug")...)
		sb.waitReady(t)
		c := client(t, sb.natsURL)
		target := strings.Replace(recv.URL, "http://", "http://hook:"+planted+"@", 1) + "/in?token=" + planted
		unreachable := "http://hook:" + planted + "@127.0.0.1:1/in?token=" + planted
		var replies strings.Builder
		for id, u := range map[string]string{"refused": target, "unreachable": unreachable} {
			v, err := notifcontract.PutWebhook(t.Context(), c, notifcontract.Webhook{ID: id, URL: u, Secret: plantedWebhookSecret, Subjects: []string{"users.events.*"}})
			if err != nil {
				t.Fatalf("put webhook %s: %v", id, err)
			}
			fmt.Fprintf(&replies, "%+v\n", v)
		}
		bad := notifcontract.Webhook{ID: "bad", URL: target, Secret: planted, Subjects: []string{"users.events.*"}}
		if _, err := notifcontract.PutWebhook(t.Context(), c, bad); err == nil {
			t.Error("a webhook with a secret that is not whsec_ was put")
		} else {
			fmt.Fprintf(&replies, "%v\n", err)
		}
		list, err := notifcontract.ListWebhooks(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&replies, "%+v\n", list)
		createUser(t, c, "Hook Trigger", "trigger@example.com", 30)
		testkit.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
			dl, err := notifcontract.ListDeadLetters(t.Context(), c, notifcontract.DeadLettersRequest{WebhookID: "refused"})
			if err != nil || len(dl.DeadLetters) == 0 {
				return fmt.Errorf("no dead letter yet: %v", err)
			}
			fmt.Fprintf(&replies, "%+v\n", dl)
			return nil
		})
		testkit.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
			if !strings.Contains(sb.stderr.String(), "127.0.0.1:1") {
				return errors.New("no failed delivery to the unreachable webhook logged yet")
			}
			return nil
		})
		if err := sb.stop(t); err != nil {
			t.Errorf("dev: %v", err)
		}
		noSecret(t, "the webhooks' replies and dead letters", replies.String())
		noSecret(t, "dev's output", sb.stdout.String()+sb.stderr.String())
	})
}
