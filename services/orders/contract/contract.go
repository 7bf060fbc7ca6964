// Package contract is the public contract of the orders service: its
// subjects, request and reply payloads, and the events it publishes.
// Callers import this package, never the service.
package contract

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Service identity and subjects.
const (
	ServiceName = "orders"
	Version     = "1.0.0"

	SubjectCreate = "orders.create"
	SubjectGet    = "orders.get"
	SubjectList   = "orders.list"
	SubjectCancel = "orders.cancel"

	// Stream holds every order's events on orders.events.<id>.<kind>,
	// kind being "placed" or "cancelled", so consumers can filter by
	// kind (orders.events.*.placed) or by order (orders.events.<id>.*).
	Stream             = "ORDERS"
	EventSubjectPrefix = "orders.events."
	EventSubjects      = "orders.events.*.*"
	// InternalSubjectPrefix starts the subjects of the store's own
	// messages in ORDERS (the per-user listings, idempotency keys). They
	// are no events: consumers filter on EventSubjects.
	InternalSubjectPrefix = "orders.internal"
	// FenceSubjects hold the store's fences (orders.fence.<id>.f), which
	// stop a write of that order that was left half-way. No events either.
	FenceSubjects = "orders.fence.*.f"
)

// Event types (Switchboard-Event-Type) and the subject kind of each.
const (
	EventPlaced    = "order.placed"
	EventCancelled = "order.cancelled"
)

// EventSubject is the subject of an event of type typ about order id.
func EventSubject(id, typ string) string {
	return EventSubjectPrefix + id + "." + strings.TrimPrefix(typ, "order.")
}

// OrderSubjects matches every event of order id.
func OrderSubjects(id string) string { return EventSubjectPrefix + id + ".*" }

// Order statuses.
const (
	StatusPlaced    = "placed"
	StatusCancelled = "cancelled"
)

// Limits of the order model.
const (
	MaxItems       = 100
	MaxQuantity    = 1000
	MaxPriceCents  = 1_000_000_000
	MaxSKULength   = 64
	DefaultLimit   = 50
	MaxLimit       = 100
	MaxReasonChars = 200
)

// Item is one line of an order.
type Item struct {
	SKU            string `json:"sku" jsonschema:"minLength=1,maxLength=64"`
	Quantity       int    `json:"quantity" jsonschema:"minimum=1,maximum=1000"`
	UnitPriceCents int64  `json:"unit_price_cents" jsonschema:"minimum=0,maximum=1000000000"`
}

// Order is an order as every endpoint returns it. Totals are in the
// currency's minor unit (cents), computed in integers.
type Order struct {
	ID           string    `json:"id"`
	UserID       string    `json:"user_id"`
	Items        []Item    `json:"items"`
	Currency     string    `json:"currency"`
	TotalCents   int64     `json:"total_cents"`
	Status       string    `json:"status" jsonschema:"enum=placed,enum=cancelled"`
	CancelReason string    `json:"cancel_reason,omitempty"`
	Version      int64     `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Event is the payload of every message on orders.events.<id>.<kind>: the
// type, the event id and the order's full state after the change.
type Event struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Order      Order     `json:"order"`
}

// CreateRequest is the payload of orders.create.
type CreateRequest struct {
	UserID   string `json:"user_id"`
	Items    []Item `json:"items" jsonschema:"minItems=1,maxItems=100"`
	Currency string `json:"currency" jsonschema:"description=ISO 4217 code in use, upper case, e.g. EUR"`
}

// Validate checks every field (but not that the user exists: the service
// asks users for that).
func (r CreateRequest) Validate() error {
	var v wire.Violations
	checkID(&v, "user_id", r.UserID)
	switch {
	case len(r.Items) == 0:
		v.Add("items", "must have at least one item")
	case len(r.Items) > MaxItems:
		v.Add("items", "must have at most %d items", MaxItems)
	}
	for i, it := range r.Items {
		if i >= MaxItems {
			break
		}
		f := func(name string) string { return "items[" + strconv.Itoa(i) + "]." + name }
		if n := utf8.RuneCountInString(it.SKU); n < 1 || n > MaxSKULength || strings.TrimFunc(it.SKU, isSKURune) != "" {
			v.Add(f("sku"), "must be 1 to %d letters, digits, '-', '_' or '.'", MaxSKULength)
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			v.Add(f("quantity"), "must be between 1 and %d", MaxQuantity)
		}
		if it.UnitPriceCents < 0 || it.UnitPriceCents > MaxPriceCents {
			v.Add(f("unit_price_cents"), "must be between 0 and %d", MaxPriceCents)
		}
	}
	if !KnownCurrency(r.Currency) {
		v.Add("currency", "must be an ISO 4217 currency code in use, upper case, like EUR or USD")
	}
	return v.Err()
}

// Total is the order total in cents: at most 100 items × 1000 × 10^9, well
// inside int64.
func Total(items []Item) int64 {
	var total int64
	for _, it := range items {
		total += int64(it.Quantity) * it.UnitPriceCents
	}
	return total
}

// KnownCurrency reports whether code is the upper-case ISO 4217 code of a
// currency in circulation (ISO 4217 list one, as of 2026): not a withdrawn
// one such as DEM, HRK or CUC, nor a fund, metal or test code such as XTS.
// The list is kept here rather than taken from golang.org/x/text, whose
// tables are from 2017 and miss VES, MRU, SLE and ZWG.
func KnownCurrency(code string) bool {
	switch code {
	case
		"AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
		"BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
		"CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
		"DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD",
		"GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
		"ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
		"KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
		"MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO",
		"NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
		"RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
		"SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP",
		"TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES", "VND",
		"VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG":
		return true
	}
	return false
}

// GetRequest is the payload of orders.get.
type GetRequest struct {
	ID string `json:"id"`
}

// Validate checks the id.
func (r GetRequest) Validate() error {
	var v wire.Violations
	checkID(&v, "id", r.ID)
	return v.Err()
}

// ListRequest is the payload of orders.list: one user's orders in creation
// order, after the given order id.
type ListRequest struct {
	UserID string `json:"user_id"`
	Limit  *int   `json:"limit,omitempty" jsonschema:"minimum=1,maximum=100,default=50"`
	After  string `json:"after,omitempty"`
}

// PageSize is the limit asked for, or DefaultLimit when none was (an
// explicit 0 is refused by Validate).
func (r ListRequest) PageSize() int {
	if r.Limit == nil {
		return DefaultLimit
	}
	return *r.Limit
}

// Validate checks the user id, limit and cursor.
func (r ListRequest) Validate() error {
	var v wire.Violations
	checkID(&v, "user_id", r.UserID)
	if r.Limit != nil && (*r.Limit < 1 || *r.Limit > MaxLimit) {
		v.Add("limit", "must be between 1 and %d (default %d)", MaxLimit, DefaultLimit)
	}
	if r.After != "" {
		checkID(&v, "after", r.After)
	}
	return v.Err()
}

// ListResponse is the reply of orders.list. Next is empty on the last page.
type ListResponse struct {
	Orders []Order `json:"orders"`
	Next   string  `json:"next,omitempty"`
}

// CancelRequest is the payload of orders.cancel.
type CancelRequest struct {
	ID      string `json:"id"`
	Version int64  `json:"version" jsonschema:"minimum=1"`
	Reason  string `json:"reason,omitempty" jsonschema:"maxLength=200"`
}

// Validate checks the id, version and reason.
func (r CancelRequest) Validate() error {
	var v wire.Violations
	checkID(&v, "id", r.ID)
	if r.Version < 1 {
		v.Add("version", "is required: the version you read (1 or more)")
	}
	if utf8.RuneCountInString(r.Reason) > MaxReasonChars {
		v.Add("reason", "must be at most %d characters", MaxReasonChars)
	}
	return v.Err()
}

func checkID(v *wire.Violations, field, id string) {
	switch {
	case id == "":
		v.Add(field, "is required")
	case !users.ValidID(id):
		v.Add(field, "is not an id (26 characters, as returned by create)")
	}
}

func isSKURune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}
