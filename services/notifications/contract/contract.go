// Package contract is the public contract of the notifications service: its
// subjects, request and reply payloads, the webhook model, the delivery task
// and the subject filter matching that decides which events a webhook gets.
// Callers import this package, never the service.
package contract

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/devloop/switchboard/redact"
	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Service identity and subjects.
const (
	ServiceName = "notifications"
	Version     = "1.0.0"

	SubjectWebhooksList      = "notifications.webhooks.list"
	SubjectWebhooksPut       = "notifications.webhooks.put"
	SubjectWebhooksDelete    = "notifications.webhooks.delete"
	SubjectDeadLettersList   = "notifications.deadletters.list"
	SubjectDeadLettersReplay = "notifications.deadletters.replay"

	// Bucket holds the webhooks, by id; every replica watches it.
	Bucket = "NOTIFICATIONS_WEBHOOKS"
	// DeliveredBucket records delivered events when there is no cache.
	DeliveredBucket = "NOTIFICATIONS_DELIVERED"
	// Stream holds delivery tasks on notifications.deliveries.<webhook id>.
	Stream                = "NOTIFICATIONS"
	DeliverySubjectPrefix = "notifications.deliveries."
)

// Headers of every webhook request. The first three are Standard
// Webhooks' (https://www.standardwebhooks.com): receivers verify and
// de-duplicate with them, with the specification's libraries or a few
// lines of any language (docs/notifications.md).
const (
	// HeaderMsgID is the event's id, the same on every delivery of it:
	// de-duplicate on it. It is signed.
	HeaderMsgID = "webhook-id"
	// HeaderMsgTimestamp is when the delivery was signed, in unix
	// seconds. It is signed; refuse one outside your tolerance.
	HeaderMsgTimestamp = "webhook-timestamp"
	// HeaderMsgSignature is "v1,<base64 HMAC-SHA256>" of
	// "<webhook-id>.<webhook-timestamp>.<body>", once per valid secret,
	// separated by spaces (two during a rotation).
	HeaderMsgSignature = "webhook-signature"

	HeaderEventType = "Switchboard-Event-Type"
	HeaderWebhookID = "Switchboard-Webhook-Id"
	// SignatureVersion precedes each signature in HeaderMsgSignature.
	SignatureVersion = "v1"
	// SecretPrefix starts every webhook secret: "whsec_" and the base64
	// of 24 to 64 random bytes.
	SecretPrefix = "whsec_"
	// Tolerance is how far from now a receiver should accept
	// HeaderMsgTimestamp (the specification's libraries use it too).
	Tolerance = 5 * time.Minute
)

// Limits of the webhook model.
const (
	MaxIDLength          = 64
	MinSecretBytes       = 24
	MaxSecretBytes       = 64
	MaxSubjects          = 20
	MaxDescriptionLength = 200
	MaxURLLength         = 2048
	DefaultLimit         = 50
	MaxLimit             = 500
)

// EventSchemes are the event subjects a webhook may subscribe to: a filter
// must match some subject of one of them.
var EventSchemes = []string{users.EventSubjects, orders.EventSubjects}

// DeliverySubject is the subject of the delivery tasks of webhook id.
func DeliverySubject(webhookID string) string { return DeliverySubjectPrefix + webhookID }

// Consumer is the durable consumer that delivers to webhook id.
func Consumer(webhookID string) string { return consumerPrefix + webhookID }

// WebhookOf is the webhook that the durable consumer delivers to, or "".
func WebhookOf(consumer string) string {
	if id, ok := strings.CutPrefix(consumer, consumerPrefix); ok {
		return id
	}
	return ""
}

const consumerPrefix = "webhook-"

// Webhook is a receiver of events: every event whose subject matches one of
// Subjects is POSTed to URL, signed with Secret (and PreviousSecret, while
// a rotation lasts).
type Webhook struct {
	ID             string   `json:"id" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9_-]+$"`
	URL            string   `json:"url" jsonschema:"description=http or https URL the events are POSTed to; its credentials and query are never shown"`
	Secret         string   `json:"secret" jsonschema:"pattern=^whsec_,description=Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes; never returned"`
	PreviousSecret string   `json:"previous_secret,omitempty" jsonschema:"pattern=^whsec_,description=the secret being rotated out: deliveries are signed with both until it is removed; never returned"`
	Subjects       []string `json:"subjects" jsonschema:"minItems=1,maxItems=20,description=NATS subject filters under users.events.> or orders.events.>"`
	Description    string   `json:"description,omitempty" jsonschema:"maxLength=200"`
}

// Validate checks every field. It does not know the private-address
// policy: the service checks that.
func (w Webhook) Validate() error {
	var v wire.Violations
	checkID(&v, "id", w.ID)
	if err := checkURL(w.URL); err != "" {
		v.Add("url", "%s", err)
	}
	if !ValidSecret(w.Secret) {
		v.Add("secret", "must be %s and the base64 of %d to %d random bytes, e.g. %s$(head -c 32 /dev/urandom | base64)", SecretPrefix, MinSecretBytes, MaxSecretBytes, SecretPrefix)
	}
	if w.PreviousSecret != "" && !ValidSecret(w.PreviousSecret) {
		v.Add("previous_secret", "must be empty or %s and the base64 of %d to %d bytes", SecretPrefix, MinSecretBytes, MaxSecretBytes)
	}
	switch {
	case len(w.Subjects) == 0:
		v.Add("subjects", "must have at least one subject filter, e.g. users.events.*")
	case len(w.Subjects) > MaxSubjects:
		v.Add("subjects", "must have at most %d subject filters", MaxSubjects)
	}
	for i, f := range w.Subjects {
		if i >= MaxSubjects {
			break
		}
		if !ValidFilter(f) {
			v.Add("subjects["+strconv.Itoa(i)+"]", "must be a NATS subject filter matching events, under %s", strings.Join(EventSchemes, " or "))
		}
	}
	if utf8.RuneCountInString(w.Description) > MaxDescriptionLength {
		v.Add("description", "must be at most %d characters", MaxDescriptionLength)
	}
	return v.Err()
}

// View is a webhook as the service shows it: without its secrets, and
// its URL without credentials or query (redact.WebURL).
type View struct {
	ID                string   `json:"id"`
	URL               string   `json:"url"`
	SecretSet         bool     `json:"secret_set"`
	PreviousSecretSet bool     `json:"previous_secret_set,omitempty"`
	Subjects          []string `json:"subjects"`
	Description       string   `json:"description,omitempty"`
}

// View returns w as it may be shown.
func (w Webhook) View() View {
	return View{ID: w.ID, URL: redact.WebURL(w.URL), SecretSet: w.Secret != "", PreviousSecretSet: w.PreviousSecret != "",
		Subjects: w.Subjects, Description: w.Description}
}

// ValidSecret reports whether s is a Standard Webhooks secret: "whsec_"
// and the standard base64 of 24 to 64 bytes.
func ValidSecret(s string) bool {
	key, err := SecretKey(s)
	return err == nil && len(key) >= MinSecretBytes && len(key) <= MaxSecretBytes
}

// SecretKey is the HMAC key of secret s: its base64 after "whsec_".
func SecretKey(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New("not a whsec_ secret")
	}
	return base64.StdEncoding.DecodeString(rest)
}

// ListRequest is the payload of notifications.webhooks.list (none needed).
type ListRequest struct{}

// ListResponse is the reply of notifications.webhooks.list, by id.
type ListResponse struct {
	Webhooks []View `json:"webhooks"`
}

// DeleteRequest is the payload of notifications.webhooks.delete.
type DeleteRequest struct {
	ID string `json:"id"`
}

// Validate checks the id.
func (r DeleteRequest) Validate() error {
	var v wire.Violations
	checkID(&v, "id", r.ID)
	return v.Err()
}

// DeleteResponse is the reply of notifications.webhooks.delete.
type DeleteResponse struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// Task is a delivery task, the payload of notifications.deliveries.<id>:
// one event to POST to one webhook.
type Task struct {
	WebhookID    string          `json:"webhook_id"`
	EventSubject string          `json:"event_subject"`
	EventType    string          `json:"event_type"`
	EventID      string          `json:"event_id"`
	EventTime    time.Time       `json:"event_time"`
	Event        json.RawMessage `json:"event"`
}

// DeadLettersRequest is the payload of notifications.deadletters.list: the
// dead letters after the stream sequence After, of one webhook or all.
type DeadLettersRequest struct {
	WebhookID string `json:"webhook_id,omitempty"`
	Limit     *int   `json:"limit,omitempty" jsonschema:"minimum=1,maximum=500,default=50"`
	After     uint64 `json:"after,omitempty"`
}

// PageSize is the limit asked for, or DefaultLimit when none was (an
// explicit 0 is refused by Validate).
func (r DeadLettersRequest) PageSize() int {
	if r.Limit == nil {
		return DefaultLimit
	}
	return *r.Limit
}

// Validate checks the webhook id and limit.
func (r DeadLettersRequest) Validate() error {
	var v wire.Violations
	if r.WebhookID != "" {
		checkID(&v, "webhook_id", r.WebhookID)
	}
	if r.Limit != nil && (*r.Limit < 1 || *r.Limit > MaxLimit) {
		v.Add("limit", "must be between 1 and %d (default %d)", MaxLimit, DefaultLimit)
	}
	return v.Err()
}

// DeadLetter is a delivery that failed for good.
type DeadLetter struct {
	// ID is the sequence in the DEADLETTER stream, for replay.
	ID           uint64    `json:"id"`
	WebhookID    string    `json:"webhook_id"`
	EventID      string    `json:"event_id"`
	EventType    string    `json:"event_type"`
	EventSubject string    `json:"event_subject"`
	Reason       string    `json:"reason"`
	Error        string    `json:"error"`
	Deliveries   int       `json:"deliveries"`
	Time         time.Time `json:"time"`
}

// DeadLettersResponse is the reply of notifications.deadletters.list. Next,
// when not 0, is the After of the next page.
type DeadLettersResponse struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	Next        uint64       `json:"next,omitempty"`
}

// ReplayRequest is the payload of notifications.deadletters.replay: one dead
// letter by ID, or All of one webhook's.
type ReplayRequest struct {
	ID        uint64 `json:"id,omitempty"`
	WebhookID string `json:"webhook_id,omitempty"`
	All       bool   `json:"all,omitempty"`
}

// Validate checks that the request names one dead letter or a webhook.
func (r ReplayRequest) Validate() error {
	var v wire.Violations
	switch {
	case r.ID != 0 && (r.All || r.WebhookID != ""):
		v.Add("id", "give either id, or webhook_id with all: true")
	case r.ID == 0 && !r.All:
		v.Add("id", "is required (or webhook_id with all: true)")
	case r.ID == 0:
		checkID(&v, "webhook_id", r.WebhookID)
	}
	return v.Err()
}

// ReplayResponse is the reply of notifications.deadletters.replay.
type ReplayResponse struct {
	Replayed int `json:"replayed"`
}

// ValidID reports whether id is 1 to 64 letters, digits, '-' or '_'.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func checkID(v *wire.Violations, field, id string) {
	if !ValidID(id) {
		v.Add(field, "must be 1 to %d letters, digits, '-' or '_'", MaxIDLength)
	}
}

// checkURL returns what is wrong with raw, or "".
func checkURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > MaxURLLength {
		return "must be at most " + strconv.Itoa(MaxURLLength) + " characters"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "must be an absolute http or https URL with a host"
	}
	return ""
}
