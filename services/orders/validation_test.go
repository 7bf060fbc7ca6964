package orders_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// itemsJSON is a JSON array of n valid items.
func itemsJSON(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"sku":"SKU-%d","quantity":1,"unit_price_cents":100}`, i)
	}
	return "[" + strings.Join(items, ",") + "]"
}

// fill replaces {USER} with the id of an existing user and {ORDER} with the
// id of an order created for the purpose (at version 1).
func fill(t *testing.T, e *env, userID, payload string) string {
	t.Helper()
	payload = strings.ReplaceAll(payload, "{USER}", userID)
	if strings.Contains(payload, "{ORDER}") {
		payload = strings.ReplaceAll(payload, "{ORDER}", mustCreate(t, e.client, order(userID)).ID)
	}
	return payload
}

// TestValidation sends raw payloads, so that it can send what the typed
// client never would.
func TestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	unknownID := ulid.Make().String()

	createWith := func(userID, items, currency string) string {
		return fmt.Sprintf(`{"user_id":%s,"items":%s,"currency":%s}`, userID, items, currency)
	}
	withItem := func(sku string, quantity int, price int64) string {
		return createWith(`"{USER}"`, fmt.Sprintf(`[{"sku":%s,"quantity":%d,"unit_price_cents":%d}]`, jsonString(sku), quantity, price), `"EUR"`)
	}
	withCurrency := func(currency string) string { return createWith(`"{USER}"`, itemsJSON(1), currency) }
	withUser := func(userID string) string { return createWith(userID, itemsJSON(1), `"EUR"`) }
	cancelWith := func(version, reason string) string {
		return fmt.Sprintf(`{"id":"{ORDER}","version":%s,"reason":%s}`, version, reason)
	}

	bad := wire.ErrBadRequest
	tests := []struct {
		name         string
		givenSubject string
		givenPayload string
		wantErr      error
		wantFields   []string // nil: not checked; empty: no details
	}{
		// orders.create: user_id
		{name: "create ok", givenSubject: contract.SubjectCreate, givenPayload: withUser(`"{USER}"`)},
		{name: "user_id missing", givenSubject: contract.SubjectCreate, givenPayload: `{"items":` + itemsJSON(1) + `,"currency":"EUR"}`, wantErr: bad, wantFields: []string{"user_id"}},
		{name: "user_id empty", givenSubject: contract.SubjectCreate, givenPayload: withUser(`""`), wantErr: bad, wantFields: []string{"user_id"}},
		{name: "user_id not an id", givenSubject: contract.SubjectCreate, givenPayload: withUser(`"42"`), wantErr: bad, wantFields: []string{"user_id"}},
		{name: "user_id lower case", givenSubject: contract.SubjectCreate, givenPayload: withUser(jsonString(strings.ToLower(unknownID))), wantErr: bad, wantFields: []string{"user_id"}},
		{name: "user_id wildcard", givenSubject: contract.SubjectCreate, givenPayload: withUser(`"*"`), wantErr: bad, wantFields: []string{"user_id"}},
		{name: "user_id wrong type", givenSubject: contract.SubjectCreate, givenPayload: withUser("7"), wantErr: bad, wantFields: []string{"user_id"}},
		// orders.create: items
		{name: "items missing", givenSubject: contract.SubjectCreate, givenPayload: `{"user_id":"{USER}","currency":"EUR"}`, wantErr: bad, wantFields: []string{"items"}},
		{name: "items empty", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, "[]", `"EUR"`), wantErr: bad, wantFields: []string{"items"}},
		{name: "items null", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, "null", `"EUR"`), wantErr: bad, wantFields: []string{"items"}},
		{name: "100 items", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, itemsJSON(100), `"EUR"`)},
		{name: "101 items", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, itemsJSON(101), `"EUR"`), wantErr: bad, wantFields: []string{"items"}},
		{name: "items wrong type", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, `"many"`, `"EUR"`), wantErr: bad, wantFields: []string{"items"}},
		// orders.create: sku
		{name: "sku with every allowed kind of character", givenSubject: contract.SubjectCreate, givenPayload: withItem("Az09-_.", 1, 1)},
		{name: "sku 64 characters", givenSubject: contract.SubjectCreate, givenPayload: withItem(strings.Repeat("s", 64), 1, 1)},
		{name: "sku empty", givenSubject: contract.SubjectCreate, givenPayload: withItem("", 1, 1), wantErr: bad, wantFields: []string{"items[0].sku"}},
		{name: "sku 65 characters", givenSubject: contract.SubjectCreate, givenPayload: withItem(strings.Repeat("s", 65), 1, 1), wantErr: bad, wantFields: []string{"items[0].sku"}},
		{name: "sku with a space", givenSubject: contract.SubjectCreate, givenPayload: withItem("a b", 1, 1), wantErr: bad, wantFields: []string{"items[0].sku"}},
		{name: "sku with a non-ASCII letter", givenSubject: contract.SubjectCreate, givenPayload: withItem("é", 1, 1), wantErr: bad, wantFields: []string{"items[0].sku"}},
		{name: "sku with a wildcard", givenSubject: contract.SubjectCreate, givenPayload: withItem("a>", 1, 1), wantErr: bad, wantFields: []string{"items[0].sku"}},
		{
			name:         "sku bad in the second item",
			givenSubject: contract.SubjectCreate,
			givenPayload: createWith(`"{USER}"`, `[{"sku":"A","quantity":1,"unit_price_cents":1},{"sku":"B B","quantity":1,"unit_price_cents":1}]`, `"EUR"`),
			wantErr:      bad, wantFields: []string{"items[1].sku"},
		},
		// orders.create: quantity
		{name: "quantity 1000", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1000, 1)},
		{name: "quantity 0", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 0, 1), wantErr: bad, wantFields: []string{"items[0].quantity"}},
		{name: "quantity negative", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", -1, 1), wantErr: bad, wantFields: []string{"items[0].quantity"}},
		{name: "quantity 1001", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1001, 1), wantErr: bad, wantFields: []string{"items[0].quantity"}},
		{
			name:         "quantity missing",
			givenSubject: contract.SubjectCreate,
			givenPayload: createWith(`"{USER}"`, `[{"sku":"A","unit_price_cents":1}]`, `"EUR"`),
			wantErr:      bad, wantFields: []string{"items[0].quantity"},
		},
		{
			// encoding/json names the field "items.quantity" here, without
			// the index: only the status is pinned.
			name:         "quantity wrong type",
			givenSubject: contract.SubjectCreate,
			givenPayload: createWith(`"{USER}"`, `[{"sku":"A","quantity":"1","unit_price_cents":1}]`, `"EUR"`),
			wantErr:      bad,
		},
		{
			name:         "quantity not an integer",
			givenSubject: contract.SubjectCreate,
			givenPayload: createWith(`"{USER}"`, `[{"sku":"A","quantity":1.5,"unit_price_cents":1}]`, `"EUR"`),
			wantErr:      bad,
		},
		// orders.create: unit_price_cents
		{name: "unit_price_cents 0", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1, 0)},
		{name: "unit_price_cents 10^9", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1, 1_000_000_000)},
		{name: "unit_price_cents -1", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1, -1), wantErr: bad, wantFields: []string{"items[0].unit_price_cents"}},
		{name: "unit_price_cents 10^9+1", givenSubject: contract.SubjectCreate, givenPayload: withItem("A", 1, 1_000_000_001), wantErr: bad, wantFields: []string{"items[0].unit_price_cents"}},
		{
			name:         "unit_price_cents beyond int64",
			givenSubject: contract.SubjectCreate,
			givenPayload: createWith(`"{USER}"`, `[{"sku":"A","quantity":1,"unit_price_cents":9223372036854775808}]`, `"EUR"`),
			wantErr:      bad,
		},
		{
			name:         "every field of an item bad",
			givenSubject: contract.SubjectCreate,
			givenPayload: withItem("", 0, -1),
			wantErr:      bad, wantFields: []string{"items[0].sku", "items[0].quantity", "items[0].unit_price_cents"},
		},
		// orders.create: currency
		{name: "currency EUR", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"EUR"`)},
		{name: "currency USD", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"USD"`)},
		{name: "currency JPY", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"JPY"`)},
		{name: "currency missing", givenSubject: contract.SubjectCreate, givenPayload: `{"user_id":"{USER}","items":` + itemsJSON(1) + `}`, wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency lower case", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"eur"`), wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency unknown", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"ABC"`), wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency historic", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"DEM"`), wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency test code", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"XTS"`), wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency too long", givenSubject: contract.SubjectCreate, givenPayload: withCurrency(`"EURO"`), wantErr: bad, wantFields: []string{"currency"}},
		{name: "currency wrong type", givenSubject: contract.SubjectCreate, givenPayload: withCurrency("978"), wantErr: bad, wantFields: []string{"currency"}},
		// orders.create: the payload as a whole
		{name: "create empty payload", givenSubject: contract.SubjectCreate, givenPayload: "", wantErr: bad, wantFields: []string{"user_id", "items", "currency"}},
		{name: "create unknown field", givenSubject: contract.SubjectCreate, givenPayload: `{"user_id":"{USER}","items":` + itemsJSON(1) + `,"currency":"EUR","coupon":"FREE"}`, wantErr: bad, wantFields: []string{"coupon"}},
		{name: "create unknown field in an item", givenSubject: contract.SubjectCreate, givenPayload: createWith(`"{USER}"`, `[{"sku":"A","quantity":1,"unit_price_cents":1,"discount":5}]`, `"EUR"`), wantErr: bad},
		{name: "create malformed JSON", givenSubject: contract.SubjectCreate, givenPayload: `{"user_id":`, wantErr: bad, wantFields: []string{}},
		{name: "create not JSON", givenSubject: contract.SubjectCreate, givenPayload: `user_id=1`, wantErr: bad, wantFields: []string{}},
		{name: "create trailing data", givenSubject: contract.SubjectCreate, givenPayload: withUser(`"{USER}"`) + `{}`, wantErr: bad, wantFields: []string{}},
		{name: "create array", givenSubject: contract.SubjectCreate, givenPayload: `[]`, wantErr: bad, wantFields: []string{}},
		// orders.get
		{name: "get ok", givenSubject: contract.SubjectGet, givenPayload: `{"id":"{ORDER}"}`},
		{name: "get id missing", givenSubject: contract.SubjectGet, givenPayload: `{}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id not an id", givenSubject: contract.SubjectGet, givenPayload: `{"id":"order-1"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id wildcard", givenSubject: contract.SubjectGet, givenPayload: `{"id":">"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id wrong type", givenSubject: contract.SubjectGet, givenPayload: `{"id":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get unknown field", givenSubject: contract.SubjectGet, givenPayload: `{"id":"{ORDER}","user_id":"{USER}"}`, wantErr: bad, wantFields: []string{"user_id"}},
		{name: "get malformed JSON", givenSubject: contract.SubjectGet, givenPayload: `{"id"`, wantErr: bad, wantFields: []string{}},
		// orders.list
		{name: "list ok", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}"}`},
		{name: "list limit 100", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","limit":100}`},
		{name: "list after", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","after":"{ORDER}"}`},
		{name: "list after an unknown order", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","after":"` + unknownID + `"}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list user_id missing", givenSubject: contract.SubjectList, givenPayload: `{}`, wantErr: bad, wantFields: []string{"user_id"}},
		{name: "list user_id not an id", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"ada"}`, wantErr: bad, wantFields: []string{"user_id"}},
		{name: "list limit 101", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","limit":101}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list limit negative", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","limit":-1}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list after not an id", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","after":"page-2"}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list limit wrong type", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","limit":"10"}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list unknown field", givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}","status":"placed"}`, wantErr: bad, wantFields: []string{"status"}},
		// orders.cancel
		{name: "cancel ok", givenSubject: contract.SubjectCancel, givenPayload: cancelWith("1", `"changed my mind"`)},
		{name: "cancel without reason", givenSubject: contract.SubjectCancel, givenPayload: `{"id":"{ORDER}","version":1}`},
		{name: "cancel reason 200 characters", givenSubject: contract.SubjectCancel, givenPayload: cancelWith("1", jsonString(strings.Repeat("é", 200)))},
		{name: "cancel reason 201 characters", givenSubject: contract.SubjectCancel, givenPayload: cancelWith("1", jsonString(strings.Repeat("r", 201))), wantErr: bad, wantFields: []string{"reason"}},
		{name: "cancel version missing", givenSubject: contract.SubjectCancel, givenPayload: `{"id":"{ORDER}"}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "cancel version 0", givenSubject: contract.SubjectCancel, givenPayload: cancelWith("0", `""`), wantErr: bad, wantFields: []string{"version"}},
		{name: "cancel version negative", givenSubject: contract.SubjectCancel, givenPayload: cancelWith("-1", `""`), wantErr: bad, wantFields: []string{"version"}},
		{name: "cancel version wrong type", givenSubject: contract.SubjectCancel, givenPayload: cancelWith(`"1"`, `""`), wantErr: bad, wantFields: []string{"version"}},
		{name: "cancel id missing", givenSubject: contract.SubjectCancel, givenPayload: `{"version":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "cancel id not an id", givenSubject: contract.SubjectCancel, givenPayload: `{"id":"x","version":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "cancel unknown field", givenSubject: contract.SubjectCancel, givenPayload: `{"id":"{ORDER}","version":1,"force":true}`, wantErr: bad, wantFields: []string{"force"}},
		{name: "cancel malformed JSON", givenSubject: contract.SubjectCancel, givenPayload: `{"id":"{ORDER}",}`, wantErr: bad, wantFields: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload := fill(t, e, ada.ID, tc.givenPayload)
			_, err := e.client.Call(t.Context(), tc.givenSubject, []byte(payload))
			checkErr(t, err, tc.wantErr, tc.wantFields)
		})
	}
}

// TestPayloadLimits sends payloads of exactly each endpoint's limit, which
// are served, and one byte more, which are refused with 413. Valid JSON is
// padded with spaces to the size wanted.
func TestPayloadLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")

	tests := []struct {
		givenSubject string
		givenPayload string
		wantLimit    int
	}{
		{givenSubject: contract.SubjectCreate, givenPayload: `{"user_id":"{USER}","items":` + itemsJSON(100) + `,"currency":"EUR"}`, wantLimit: 64 << 10},
		{givenSubject: contract.SubjectGet, givenPayload: `{"id":"{ORDER}"}`, wantLimit: 4 << 10},
		{givenSubject: contract.SubjectList, givenPayload: `{"user_id":"{USER}"}`, wantLimit: 4 << 10},
		{givenSubject: contract.SubjectCancel, givenPayload: `{"id":"{ORDER}","version":1}`, wantLimit: 4 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.givenSubject, func(t *testing.T) {
			t.Parallel()
			payload := fill(t, e, ada.ID, tc.givenPayload)
			pad := func(n int) []byte { return []byte(payload + strings.Repeat(" ", n-len(payload))) }

			if _, err := e.client.Call(t.Context(), tc.givenSubject, pad(tc.wantLimit)); err != nil {
				t.Errorf("%d bytes (the limit): %v", tc.wantLimit, err)
			}
			_, err := e.client.Call(t.Context(), tc.givenSubject, pad(tc.wantLimit+1))
			checkErr(t, err, wire.ErrTooLarge, []string{})
		})
	}
}

func TestKnownCurrency(t *testing.T) {
	tests := []struct {
		given string
		want  bool
	}{
		{"EUR", true}, {"USD", true}, {"JPY", true}, {"VES", true}, {"MRU", true}, {"SLE", true}, {"ZWG", true}, {"XCG", true},
		{"eur", false}, {"ABC", false}, {"DEM", false}, {"HRK", false}, {"CUC", false}, {"VEF", false}, {"XTS", false}, {"XXX", false}, {"XAU", false}, {"", false}, {"EURO", false},
	}
	for _, tt := range tests {
		if got := contract.KnownCurrency(tt.given); got != tt.want {
			t.Errorf("KnownCurrency(%q) = %v, want %v", tt.given, got, tt.want)
		}
	}
}
