package orders_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/devloop/switchboard/services/orders/contract"
	userscontract "github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")

	biggest := make([]contract.Item, contract.MaxItems)
	for i := range biggest {
		biggest[i] = contract.Item{SKU: "GOLD-BAR", Quantity: contract.MaxQuantity, UnitPriceCents: contract.MaxPriceCents}
	}
	tests := []struct {
		name          string
		givenItems    []contract.Item
		givenCurrency string
		wantTotal     int64
		wantRawTotal  string // how total_cents reads in the JSON reply
	}{
		{
			name:          "two lines",
			givenItems:    order("").Items, // 2×1250 + 3×999
			givenCurrency: "EUR",
			wantTotal:     5497,
			wantRawTotal:  `"total_cents":5497`,
		},
		{
			name:          "largest order",
			givenItems:    biggest, // 100 × 1000 × 10^9
			givenCurrency: "USD",
			wantTotal:     100_000_000_000_000,
			wantRawTotal:  `"total_cents":100000000000000`, // not 1e+14
		},
		{
			name:          "free items",
			givenItems:    []contract.Item{{SKU: "SAMPLE", Quantity: 1000, UnitPriceCents: 0}},
			givenCurrency: "JPY",
			wantTotal:     0,
			wantRawTotal:  `"total_cents":0`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := contract.CreateRequest{UserID: ada.ID, Items: tc.givenItems, Currency: tc.givenCurrency}
			got := mustCreate(t, e.client, req)

			if !userscontract.ValidID(got.ID) {
				t.Errorf("id %q is not a ULID", got.ID)
			}
			if got.UserID != ada.ID || got.Currency != tc.givenCurrency || !reflect.DeepEqual(got.Items, tc.givenItems) {
				t.Errorf("order = %+v, want user %s, currency %s and the items given", got, ada.ID, tc.givenCurrency)
			}
			if got.Status != contract.StatusPlaced || got.Version != 1 || got.CancelReason != "" {
				t.Errorf("status, version, reason = %q, %d, %q; want placed, 1, none", got.Status, got.Version, got.CancelReason)
			}
			if got.TotalCents != tc.wantTotal {
				t.Errorf("total_cents = %d, want %d", got.TotalCents, tc.wantTotal)
			}
			if got.CreatedAt.IsZero() || !got.CreatedAt.Equal(got.UpdatedAt) {
				t.Errorf("created_at %v, updated_at %v: want the same, non-zero", got.CreatedAt, got.UpdatedAt)
			}
			if read := mustGet(t, e.client, got.ID); !reflect.DeepEqual(read, got) {
				t.Errorf("get = %+v, want %+v", read, got)
			}

			// The wire form of the total, through a raw call.
			reply, err := e.client.Call(t.Context(), contract.SubjectGet, []byte(`{"id":"`+got.ID+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(reply.Data, []byte(tc.wantRawTotal)) {
				t.Errorf("get reply %s does not hold %s", reply.Data, tc.wantRawTotal)
			}
		})
	}
}

func TestCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	req := order(ada.ID)

	key := strings.Repeat("k", wire.MaxIdempotencyKey) // the longest accepted
	first, err := create(ctx, e.client, req, wire.WithIdempotencyKey(key))
	if err != nil {
		t.Fatalf("create with a %d-byte key: %v", len(key), err)
	}
	retry, err := create(ctx, e.client, req, wire.WithIdempotencyKey(key))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !reflect.DeepEqual(retry, first) {
		t.Errorf("retry = %+v, want the first order %+v", retry, first)
	}
	other, err := create(ctx, e.client, req, wire.WithIdempotencyKey("another key"))
	if err != nil {
		t.Fatalf("create with another key: %v", err)
	}
	if other.ID == first.ID {
		t.Errorf("another key returned the first order %s", first.ID)
	}
	if got, want := ids(listAll(t, e.client, ada.ID, 0)), []string{first.ID, other.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("orders = %q, want %q", got, want)
	}

	_, err = create(ctx, e.client, req, wire.WithIdempotencyKey(key+"k"))
	checkErr(t, err, wire.ErrBadRequest, []string{wire.HeaderIdempotencyKey})
	if n := len(listAll(t, e.client, ada.ID, 0)); n != 2 {
		t.Errorf("%d orders after a refused key, want 2", n)
	}
}

// TestCreateIdempotencyKeyConcurrent races retries with one key: they all
// get the same order, and only one is placed.
func TestCreateIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")

	results, errs := race(racers, func(int) (contract.Order, error) {
		return create(t.Context(), e.client, order(ada.ID), wire.WithIdempotencyKey("checkout-42"))
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !reflect.DeepEqual(results[i], results[0]) {
			t.Errorf("call %d = %+v, want %+v like call 0", i, results[i], results[0])
		}
	}
	all := listAll(t, e.client, ada.ID, 0)
	if len(all) != 1 || !reflect.DeepEqual(all[0], results[0]) {
		t.Fatalf("orders = %+v, want only %+v", all, results[0])
	}
}
