package orders_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/wire"
)

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	mustCreate(t, e.client, order(ada.ID)) // the stream is not empty

	_, err := get(t.Context(), e.client, ulid.Make().String())
	checkErr(t, err, wire.ErrNotFound, nil)
	// A user id is not an order id.
	_, err = get(t.Context(), e.client, ada.ID)
	checkErr(t, err, wire.ErrNotFound, nil)
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	alan := mustCreateUser(t, e.client, "Alan", "alan@example.com")

	// Interleaved, so that each user's orders are not adjacent in id order.
	var want, alans []string
	for i := range 7 {
		want = append(want, mustCreate(t, e.client, order(ada.ID)).ID)
		if i%2 == 0 {
			alans = append(alans, mustCreate(t, e.client, order(alan.ID)).ID)
		}
	}
	if !slices.IsSorted(want) {
		t.Fatalf("ids %q are not in creation order", want)
	}

	for _, limit := range []int{0, 1, 2, 3, 6, 7, 8, contract.MaxLimit} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			t.Parallel()
			pages := 0
			var got []string
			after := ""
			for {
				resp, err := list(t.Context(), e.client, contract.ListRequest{UserID: ada.ID, Limit: limitOf(limit), After: after})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if limit > 0 && len(resp.Orders) > limit {
					t.Fatalf("page %d holds %d orders, over the limit", pages, len(resp.Orders))
				}
				for _, o := range resp.Orders {
					if o.UserID != ada.ID {
						t.Errorf("order %s of user %s listed for %s", o.ID, o.UserID, ada.ID)
					}
					got = append(got, o.ID)
				}
				if resp.Next == "" {
					break
				}
				if resp.Next != got[len(got)-1] {
					t.Errorf("next = %s, want the last id of the page %s", resp.Next, got[len(got)-1])
				}
				after = resp.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %q, want %q", got, want)
			}
			pageSize := limit
			if pageSize == 0 {
				pageSize = contract.DefaultLimit
			}
			if wantPages := max(1, (len(want)+pageSize-1)/pageSize); pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}

	t.Run("another user", func(t *testing.T) {
		t.Parallel()
		if got := ids(listAll(t, e.client, alan.ID, 0)); !slices.Equal(got, alans) {
			t.Errorf("listed %q, want %q", got, alans)
		}
	})
	t.Run("after the last", func(t *testing.T) {
		t.Parallel()
		resp, err := list(t.Context(), e.client, contract.ListRequest{UserID: ada.ID, After: want[len(want)-1]})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Orders) != 0 || resp.Next != "" {
			t.Errorf("list after the last order = %+v, want nothing", resp)
		}
	})
	t.Run("user without orders", func(t *testing.T) {
		t.Parallel()
		reply, err := e.client.Call(t.Context(), contract.SubjectList, []byte(`{"user_id":"`+ulid.Make().String()+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reply.Data, []byte(`{"orders":[]}`)) {
			t.Errorf("list = %s, want {\"orders\":[]}", reply.Data)
		}
	})
}

func TestListDefaultLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	alan := mustCreateUser(t, e.client, "Alan", "alan@example.com")
	var want []string
	for range contract.DefaultLimit + 1 {
		want = append(want, mustCreate(t, e.client, order(ada.ID)).ID)
	}
	mustCreate(t, e.client, order(alan.ID))

	first, err := list(t.Context(), e.client, contract.ListRequest{UserID: ada.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first.Orders); !slices.Equal(got, want[:contract.DefaultLimit]) || first.Next != want[contract.DefaultLimit-1] {
		t.Fatalf("first page: %d orders, next %q; want the first %d, next %s", len(got), first.Next, contract.DefaultLimit, want[contract.DefaultLimit-1])
	}
	second, err := list(t.Context(), e.client, contract.ListRequest{UserID: ada.ID, After: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(second.Orders); !slices.Equal(got, want[contract.DefaultLimit:]) || second.Next != "" {
		t.Fatalf("second page = %q, next %q; want %q and no next", got, second.Next, want[contract.DefaultLimit:])
	}
}

// TestListReadsItsWrites lists right after each write: the write is there.
func TestListReadsItsWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := mustCreateUser(t, e.client, "Ada", "ada@example.com")
	for i := range 20 {
		placed := mustCreate(t, e.client, order(ada.ID))
		all := listAll(t, e.client, ada.ID, contract.MaxLimit)
		if len(all) != i+1 || all[i].ID != placed.ID || all[i].Status != contract.StatusPlaced {
			t.Fatalf("list right after creating %s = %q, want %d orders ending with it", placed.ID, ids(all), i+1)
		}
		if i%3 == 0 {
			mustCancel(t, e.client, contract.CancelRequest{ID: placed.ID, Version: 1})
			all = listAll(t, e.client, ada.ID, contract.MaxLimit)
			if got := all[i]; got.Status != contract.StatusCancelled || got.Version != 2 {
				t.Fatalf("list right after cancelling %s: status %q, version %d; want cancelled, 2", placed.ID, got.Status, got.Version)
			}
		}
	}
}

// The largest page a caller may ask for (100 orders of 100 items each) is
// more than a stock server's 1 MiB max payload: the page is cut to what
// fits, with a cursor to the rest, instead of a reply that cannot be sent
// and a caller that waits out its timeout.
func TestListPageFitsTheServersMaxPayload(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.StartSecure(t, t.TempDir(), model(), func(o *embedded.Options) { o.MaxPayload = 1 << 20 })
	startUsers(t, connect(t, srv, "users"))
	startOrders(t, connect(t, srv, "orders"))
	c := newClient(t, connect(t, srv, "client"))
	ada := mustCreateUser(t, c, "Ada", "ada@example.com")
	big := order(ada.ID)
	big.Items = nil
	for i := range contract.MaxItems {
		big.Items = append(big.Items, contract.Item{SKU: fmt.Sprintf("%s-%03d", strings.Repeat("S", 60), i), Quantity: 1000, UnitPriceCents: 999_999_999})
	}
	const n = contract.MaxLimit
	for range n {
		mustCreate(t, c, big)
	}
	var got int
	after := ""
	pages := 0
	for {
		resp, err := list(t.Context(), c, contract.ListRequest{UserID: ada.ID, Limit: limitOf(contract.MaxLimit), After: after})
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		data, _ := json.Marshal(resp)
		if len(data) > 1<<20 {
			t.Fatalf("a page of %d bytes", len(data))
		}
		got += len(resp.Orders)
		pages++
		if resp.Next == "" {
			break
		}
		after = resp.Next
	}
	if got != n || pages < 2 {
		t.Fatalf("%d orders in %d pages, want %d in more than one page", got, pages, n)
	}
}
