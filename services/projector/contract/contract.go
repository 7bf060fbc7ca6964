// Package contract is the public contract of the projector service: the
// query subjects it serves from PostgreSQL, their payloads and a typed
// client. Callers import this package, never the service.
package contract

import (
	"strings"
	"time"
	"unicode/utf8"

	orders "github.com/devloop/switchboard/services/orders/contract"
	users "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Service identity and subjects. The queries are on the subjects of the
// data they answer about (users.search, orders.search), served by the
// micro service "projector".
const (
	ServiceName = "projector"
	Version     = "1.0.0"

	SubjectUsersSearch  = "users.search"
	SubjectOrdersSearch = "orders.search"
	SubjectStatus       = "projector.status"
)

// Limits of the queries.
const (
	DefaultLimit   = 50
	MaxLimit       = 100
	MaxPrefixChars = 100
)

// Sort orders of orders.search.
const (
	SortCreatedAsc  = "created_at"
	SortCreatedDesc = "-created_at"
)

// UsersSearchRequest is the payload of users.search: users whose name
// and/or email start with the given prefixes (case-insensitive), in id
// (creation) order.
type UsersSearchRequest struct {
	NamePrefix  string `json:"name_prefix,omitempty" jsonschema:"maxLength=100,description=Case-insensitive prefix of the name"`
	EmailPrefix string `json:"email_prefix,omitempty" jsonschema:"maxLength=100,description=Case-insensitive prefix of the email"`
	Limit       int    `json:"limit,omitempty" jsonschema:"minimum=1,maximum=100,default=50"`
	After       string `json:"after,omitempty" jsonschema:"description=The next cursor of the previous page"`
	// MinSequence is a USERS stream sequence (a write's
	// Switchboard-Sequence reply header): the query waits until the
	// projection has applied it.
	MinSequence uint64 `json:"min_sequence,omitempty" jsonschema:"description=Wait until the projection has applied this USERS sequence (read your writes)"`
}

// Validate checks the prefixes, limit and cursor.
func (r UsersSearchRequest) Validate() error {
	var v wire.Violations
	checkPrefix(&v, "name_prefix", r.NamePrefix)
	checkPrefix(&v, "email_prefix", r.EmailPrefix)
	checkLimit(&v, r.Limit)
	if r.After != "" && !users.ValidID(r.After) {
		v.Add("after", "is not a cursor returned as next by users.search")
	}
	return v.Err()
}

// UsersSearchResponse is the reply of users.search. Next is empty on the
// last page; Sequence is the USERS sequence the projection had applied
// when it answered.
type UsersSearchResponse struct {
	Users    []users.User `json:"users"`
	Next     string       `json:"next,omitempty"`
	Sequence uint64       `json:"sequence"`
}

// OrdersSearchRequest is the payload of orders.search: orders filtered by
// user, status and creation time, sorted by creation time, paginated by
// keyset (After is the Next of the previous page).
type OrdersSearchRequest struct {
	UserID        string     `json:"user_id,omitempty"`
	Status        string     `json:"status,omitempty" jsonschema:"enum=placed,enum=cancelled"`
	CreatedFrom   *time.Time `json:"created_from,omitempty" jsonschema:"description=Only orders created at or after this time (RFC 3339)"`
	CreatedBefore *time.Time `json:"created_before,omitempty" jsonschema:"description=Only orders created before this time (RFC 3339)"`
	Sort          string     `json:"sort,omitempty" jsonschema:"enum=created_at,enum=-created_at,default=-created_at,description=created_at: oldest first; -created_at: newest first"`
	Limit         int        `json:"limit,omitempty" jsonschema:"minimum=1,maximum=100,default=50"`
	After         string     `json:"after,omitempty" jsonschema:"description=The next cursor of the previous page (same filters and sort)"`
	// MinSequence is an ORDERS stream sequence: the query waits until
	// the projection has applied it.
	MinSequence uint64 `json:"min_sequence,omitempty" jsonschema:"description=Wait until the projection has applied this ORDERS sequence (read your writes)"`
}

// Validate checks every field.
func (r OrdersSearchRequest) Validate() error {
	var v wire.Violations
	if r.UserID != "" && !users.ValidID(r.UserID) {
		v.Add("user_id", "is not a user id (26 characters, as returned by users.create)")
	}
	if r.Status != "" && r.Status != orders.StatusPlaced && r.Status != orders.StatusCancelled {
		v.Add("status", "must be %s or %s", orders.StatusPlaced, orders.StatusCancelled)
	}
	if r.CreatedFrom != nil && r.CreatedBefore != nil && !r.CreatedFrom.Before(*r.CreatedBefore) {
		v.Add("created_before", "must be after created_from")
	}
	if r.Sort != "" && r.Sort != SortCreatedAsc && r.Sort != SortCreatedDesc {
		v.Add("sort", "must be %s (oldest first) or %s (newest first, the default)", SortCreatedAsc, SortCreatedDesc)
	}
	checkLimit(&v, r.Limit)
	if r.After != "" {
		if _, _, ok := ParseOrdersCursor(r.After); !ok {
			v.Add("after", "is not a cursor returned as next by orders.search")
		}
	}
	return v.Err()
}

// OrdersSearchResponse is the reply of orders.search, orders with their
// items. Next is empty on the last page; Sequence is the ORDERS sequence
// the projection had applied when it answered.
type OrdersSearchResponse struct {
	Orders   []orders.Order `json:"orders"`
	Next     string         `json:"next,omitempty"`
	Sequence uint64         `json:"sequence"`
}

// OrdersCursor is the cursor after an order: its creation time and id.
func OrdersCursor(createdAt time.Time, id string) string {
	return createdAt.UTC().Format(time.RFC3339Nano) + "_" + id
}

// ParseOrdersCursor reads a cursor made by OrdersCursor.
func ParseOrdersCursor(s string) (time.Time, string, bool) {
	ts, id, ok := strings.Cut(s, "_")
	if !ok || !users.ValidID(id) {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, id, true
}

// StatusRequest is the (empty) payload of projector.status.
type StatusRequest struct{}

// StatusResponse is the reply of projector.status: each projection's
// state in this replica, by name ("users", "orders").
type StatusResponse struct {
	Projections map[string]ProjectionStatus `json:"projections"`
}

// Roles of a replica for one projection.
const (
	RoleLeader   = "leader"   // holds the projection's lock and applies events
	RoleStandby  = "standby"  // another replica leads; takes over if it goes
	RoleStarting = "starting" // connecting to PostgreSQL
)

// ProjectionStatus is one projection's state as one replica sees it.
type ProjectionStatus struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Role     string `json:"role"`
	// AppliedSequence is the stream sequence the tables reflect: every
	// event up to it is applied.
	AppliedSequence uint64 `json:"applied_sequence"`
	// StreamSequence is the stream's last sequence (any subject).
	StreamSequence uint64 `json:"stream_sequence"`
	// Pending is how many events the consumer has yet to deliver: the lag.
	Pending uint64 `json:"pending"`
	// Applied and Unchanged count the events this replica wrote, and
	// those it found applied already (redeliveries, replays).
	Applied   uint64 `json:"applied"`
	Unchanged uint64 `json:"unchanged"`
	Batches   uint64 `json:"batches"`
	// PostgresOK says whether PostgreSQL answered the last check.
	PostgresOK bool   `json:"postgres_ok"`
	LastError  string `json:"last_error,omitempty"`
}

func checkPrefix(v *wire.Violations, field, p string) {
	switch {
	case !utf8.ValidString(p):
		v.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(p) > MaxPrefixChars:
		v.Add(field, "must be at most %d characters", MaxPrefixChars)
	case strings.ContainsRune(p, 0):
		v.Add(field, "must not contain NUL")
	}
}

func checkLimit(v *wire.Violations, limit int) {
	if limit != 0 && (limit < 1 || limit > MaxLimit) {
		v.Add("limit", "must be between 1 and %d (default %d)", MaxLimit, DefaultLimit)
	}
}
