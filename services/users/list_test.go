package users_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/devloop/switchboard/services/users/contract"
)

// createN creates n users named user-0.. and returns their ids sorted.
func createN(t *testing.T, e *env, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range n {
		out[i] = mustCreate(t, e.client, fmt.Sprintf("user-%d", i), fmt.Sprintf("user%d@example.com", i), i%150).ID
	}
	slices.Sort(out)
	return out
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := createN(t, e, 23)

	tests := []struct {
		name       string
		givenLimit int
		wantPages  int
	}{
		{name: "limit 1", givenLimit: 1, wantPages: 23},
		{name: "limit 5", givenLimit: 5, wantPages: 5},
		{name: "limit 22", givenLimit: 22, wantPages: 2},
		{name: "limit 23", givenLimit: 23, wantPages: 1},
		{name: "limit 100", givenLimit: 100, wantPages: 1},
		{name: "default limit", givenLimit: 0, wantPages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			after, pages := "", 0
			for {
				resp, err := list(t.Context(), e.client, contract.ListRequest{Limit: limitOf(tc.givenLimit), After: after})
				if err != nil {
					t.Fatalf("list after %q: %v", after, err)
				}
				pages++
				limit := tc.givenLimit
				if limit == 0 {
					limit = contract.DefaultLimit
				}
				if len(resp.Users) > limit {
					t.Fatalf("page %d has %d users, over the limit %d", pages, len(resp.Users), limit)
				}
				if resp.Next != "" && len(resp.Users) != limit {
					t.Fatalf("page %d has %d users and a next cursor, want a full page of %d", pages, len(resp.Users), limit)
				}
				if resp.Next != "" && resp.Next != resp.Users[len(resp.Users)-1].ID {
					t.Fatalf("next = %q, want the last id of the page %q", resp.Next, resp.Users[len(resp.Users)-1].ID)
				}
				got = append(got, ids(resp.Users)...)
				if resp.Next == "" || pages > len(want)+1 {
					break
				}
				after = resp.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("ids over all pages =\n%q\nwant every user once, in id order:\n%q", got, want)
			}
			if pages != tc.wantPages {
				t.Errorf("pages = %d, want %d", pages, tc.wantPages)
			}
		})
	}
	t.Run("after the last id", func(t *testing.T) {
		resp, err := list(t.Context(), e.client, contract.ListRequest{After: want[len(want)-1]})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Users) != 0 || resp.Next != "" {
			t.Errorf("list after the last id = %+v, want an empty last page", resp)
		}
	})
	t.Run("after a deleted id", func(t *testing.T) {
		mustDelete(t, e.client, want[10], 0)
		resp, err := list(t.Context(), e.client, contract.ListRequest{Limit: ptr(3), After: want[10]})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(resp.Users); !slices.Equal(got, want[11:14]) {
			t.Errorf("list after a deleted id = %q, want the users after it %q", got, want[11:14])
		}
	})
}

func TestListDefaultLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := createN(t, e, 60)

	first, err := list(t.Context(), e.client, contract.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Users) != 50 || first.Next == "" {
		t.Fatalf("first page: %d users, next %q; want 50 and a cursor", len(first.Users), first.Next)
	}
	second, err := list(t.Context(), e.client, contract.ListRequest{After: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Users) != 10 || second.Next != "" {
		t.Fatalf("second page: %d users, next %q; want 10 and no cursor", len(second.Users), second.Next)
	}
	if got := append(ids(first.Users), ids(second.Users)...); !slices.Equal(got, want) {
		t.Errorf("ids = %q, want %q", got, want)
	}
}

func TestListSeesWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var live []contract.User
	for i := range 10 {
		// Every write is visible to the very next list.
		u := mustCreate(t, e.client, fmt.Sprintf("user-%d", i), fmt.Sprintf("user%d@example.com", i), 20)
		live = append(live, u)
		if got := listAll(t, e.client, 100); !slices.Contains(got, u) {
			t.Fatalf("list right after creating %s does not have it: %v", u.ID, ids(got))
		}
	}
	updated := mustUpdate(t, e.client, contract.UpdateRequest{ID: live[3].ID, Version: 1, Name: ptr("renamed")})
	if got := listAll(t, e.client, 100); !slices.Contains(got, updated) {
		t.Fatalf("list right after an update does not have the new state %+v: %+v", updated, got)
	}
	live[3] = updated
	for _, i := range []int{0, 5, 9} {
		mustDelete(t, e.client, live[i].ID, 0)
	}
	live = slices.Delete(live, 9, 10)
	live = slices.Delete(live, 5, 6)
	live = slices.Delete(live, 0, 1)

	got := listAll(t, e.client, 4)
	slices.SortFunc(live, func(a, b contract.User) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, live) {
		t.Errorf("list =\n%+v\nwant the live users (deleted ones gone, updates applied)\n%+v", got, live)
	}
}
