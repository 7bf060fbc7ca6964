package notifications

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
)

// Sign returns the webhook-signature value of a delivery, as Standard
// Webhooks specify: "v1,<base64 HMAC-SHA256 of msgID.timestamp.body>" for
// each of secrets (whsec_ form), separated by spaces. The id is inside
// the signature, so a replay under another id does not verify.
func Sign(msgID string, timestamp int64, body []byte, secrets ...string) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s == "" {
			continue
		}
		key, err := contract.SecretKey(s)
		if err != nil {
			return "", errors.New("webhook secret is not a whsec_ secret")
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%d.", msgID, timestamp)
		mac.Write(body)
		sigs = append(sigs, contract.SignatureVersion+","+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// deliverer POSTs delivery tasks to their webhooks.
type deliverer struct {
	reg       *registry
	client    *http.Client
	delivered deliveredStore
	now       func() time.Time
	logger    *slog.Logger
	metrics   *webhookMetrics // nil: metrics off
}

// deliver is the handler of every webhook's delivery consumer. A delivery
// is at least once: it is marked delivered only after a 2xx, and skipped
// when marked already, so only a crash between the 2xx and the mark sends
// it again (receivers de-duplicate on webhook-id).
func (d *deliverer) deliver(ctx context.Context, ev messaging.Event[contract.Task]) error {
	t := ev.Data
	// The consumer's logger names the webhook and "<webhook>:<event>".
	log := messaging.LoggerFrom(ctx)
	hook, ok := d.reg.get(t.WebhookID)
	if !ok {
		return messaging.Permanent(fmt.Errorf("webhook %q no longer exists", t.WebhookID))
	}
	key := t.WebhookID + ":" + t.EventID
	done, err := d.delivered.seen(ctx, key)
	if err != nil {
		// The marks are an optimisation of at-least-once, not a gate:
		// an outage of their store must not hold deliveries back (or
		// dead-letter them). Send; receivers de-duplicate.
		log.Warn("cannot tell whether already delivered; sending", slog.String("error", err.Error()))
	}
	if done {
		d.metrics.skipped()
		log.Debug("already delivered; skipped")
		return nil
	}
	start := time.Now()
	err = d.post(ctx, hook, t)
	d.metrics.observe(err, time.Since(start))
	if err != nil {
		return err
	}
	if err := d.delivered.mark(ctx, key); err != nil {
		// Delivered all the same: failing now would send it again.
		log.Warn("delivered, but recording it failed; a redelivery would send it again", slog.String("error", err.Error()))
	}
	log.Info("webhook delivered")
	return nil
}

// post sends one task and classifies the outcome: nil for a 2xx, a
// Permanent error for what retrying cannot fix, a RetryAfter or plain
// (transient) error otherwise.
func (d *deliverer) post(ctx context.Context, hook contract.Webhook, t contract.Task) error {
	body := []byte(t.Event)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return messaging.Permanent(fmt.Errorf("request to %s: %w", host(hook.URL), err))
	}
	ts := d.now().Unix()
	sig, err := Sign(t.EventID, ts, body, hook.Secret, hook.PreviousSecret)
	if err == nil && sig == "" {
		err = errors.New("no secret")
	}
	if err != nil {
		return messaging.Permanent(fmt.Errorf("sign for webhook %q: %w", hook.ID, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhooks/"+contract.Version)
	req.Header.Set(contract.HeaderMsgID, t.EventID)
	req.Header.Set(contract.HeaderMsgTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(contract.HeaderMsgSignature, sig)
	req.Header.Set(contract.HeaderEventType, t.EventType)
	req.Header.Set(contract.HeaderWebhookID, hook.ID)
	resp, err := d.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, which may carry credentials:
		// name the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		err = fmt.Errorf("POST to %s: %w", host(hook.URL), err)
		if errors.Is(err, ErrPrivateAddress) {
			return messaging.Permanent(err)
		}
		return err
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	herr := fmt.Errorf("HTTP %d: %s", code, summary(code, snippet))
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), d.now()); ok {
			return messaging.RetryAfter(herr, after)
		}
		return herr
	case code >= 300 && code < 400:
		return messaging.Permanent(fmt.Errorf("%w (redirects are not followed; fix the webhook URL)", herr))
	}
	return messaging.Permanent(herr)
}

// retryAfter parses a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// summary is the start of the body on one line, else the status text.
func summary(code int, body []byte) string {
	s := strings.ToValidUTF8(strings.Join(strings.Fields(string(body)), " "), "?")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	if s == "" {
		return http.StatusText(code)
	}
	return s
}

// host is the host of raw, for errors and logs: the rest of a URL may hold
// tokens.
func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Host
}
