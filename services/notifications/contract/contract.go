// Package contract is the public contract of the notifications service: its
// subjects, request and reply payloads, the webhook model, the delivery task
// and the subject filter matching that decides which events a webhook gets.
// Callers import this package, never the service.
package contract

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// Headers of every webhook request.
const (
	HeaderEventType = "Switchboard-Event-Type"
	HeaderEventID   = "Switchboard-Event-Id"
	HeaderWebhookID = "Switchboard-Webhook-Id"
	HeaderTimestamp = "Switchboard-Timestamp"
	HeaderSignature = "Switchboard-Signature"
	// SignaturePrefix precedes the hex HMAC-SHA256 in HeaderSignature.
	SignaturePrefix = "v1="
)

// Limits of the webhook model.
const (
	MaxIDLength          = 64
	MinSecretLength      = 16
	MaxSecretLength      = 256
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
// Subjects is POSTed to URL, signed with Secret.
type Webhook struct {
	ID          string   `json:"id" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9_-]+$"`
	URL         string   `json:"url" jsonschema:"description=http or https URL the events are POSTed to"`
	Secret      string   `json:"secret" jsonschema:"minLength=16,maxLength=256,description=HMAC-SHA256 key of Switchboard-Signature; never returned"`
	Subjects    []string `json:"subjects" jsonschema:"minItems=1,maxItems=20,description=NATS subject filters under users.events.> or orders.events.>"`
	Description string   `json:"description,omitempty" jsonschema:"maxLength=200"`
}

// Validate checks every field. It does not know the private-address
// policy: the service checks that.
func (w Webhook) Validate() error {
	var v wire.Violations
	checkID(&v, "id", w.ID)
	if err := checkURL(w.URL); err != "" {
		v.Add("url", "%s", err)
	}
	if n := utf8.RuneCountInString(w.Secret); n < MinSecretLength || n > MaxSecretLength {
		v.Add("secret", "must be %d to %d characters", MinSecretLength, MaxSecretLength)
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

// View is a webhook as the service shows it: without its secret.
type View struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	SecretSet   bool     `json:"secret_set"`
	Subjects    []string `json:"subjects"`
	Description string   `json:"description,omitempty"`
}

// View returns w without its secret.
func (w Webhook) View() View {
	return View{ID: w.ID, URL: w.URL, SecretSet: w.Secret != "", Subjects: w.Subjects, Description: w.Description}
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
