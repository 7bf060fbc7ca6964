package users_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/services/users/contract"
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

// TestValidation sends raw payloads, so that it can send what the typed
// client never would. In givenPayload, {ID} is replaced by the id of a user
// created for the case (at version 1) and {EMAIL} by an email nobody has.
func TestValidation(t *testing.T) {
	t.Parallel()
	const (
		ok254 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + // 64 + 1
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb." + // 64
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb." + // 64
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com" // 61
	)
	if len(ok254) != 254 {
		t.Fatalf("ok254 has %d bytes", len(ok254))
	}
	long255 := "a" + ok254
	unknownID := ulid.Make().String()
	name100 := strings.Repeat("n", 100)
	runes100 := strings.Repeat("é", 100) // 200 bytes, 100 runes

	createWith := func(name, email, age string) string {
		return fmt.Sprintf(`{"name":%s,"email":%s,"age":%s}`, name, email, age)
	}
	okCreate := func(name string) string { return createWith(jsonString(name), `"{EMAIL}"`, "36") }
	badEmail := func(email string) string { return createWith(`"Ada"`, jsonString(email), "36") }
	badAge := func(age string) string { return createWith(`"Ada"`, `"{EMAIL}"`, age) }

	bad := wire.ErrBadRequest
	tests := []struct {
		name         string
		givenSubject string
		givenPayload string
		wantErr      error
		wantFields   []string // nil: not checked; empty: no details
	}{
		// users.create: name
		{name: "create ok", givenSubject: contract.SubjectCreate, givenPayload: okCreate("Ada")},
		{name: "name missing", givenSubject: contract.SubjectCreate, givenPayload: `{"email":"{EMAIL}","age":36}`, wantErr: bad, wantFields: []string{"name"}},
		{name: "name empty", givenSubject: contract.SubjectCreate, givenPayload: okCreate(""), wantErr: bad, wantFields: []string{"name"}},
		{name: "name only spaces", givenSubject: contract.SubjectCreate, givenPayload: okCreate("    "), wantErr: bad, wantFields: []string{"name"}},
		{name: "name 100 characters", givenSubject: contract.SubjectCreate, givenPayload: okCreate(name100)},
		{name: "name 100 characters between spaces", givenSubject: contract.SubjectCreate, givenPayload: okCreate("  " + name100 + "  ")},
		{name: "name 101 characters", givenSubject: contract.SubjectCreate, givenPayload: okCreate(name100 + "n"), wantErr: bad, wantFields: []string{"name"}},
		{name: "name 100 multibyte runes", givenSubject: contract.SubjectCreate, givenPayload: okCreate(runes100)},
		{name: "name 101 multibyte runes", givenSubject: contract.SubjectCreate, givenPayload: okCreate(runes100 + "é"), wantErr: bad, wantFields: []string{"name"}},
		{name: "name with a control character", givenSubject: contract.SubjectCreate, givenPayload: okCreate("Ada\x07Lovelace"), wantErr: bad, wantFields: []string{"name"}},
		{name: "name with a tab", givenSubject: contract.SubjectCreate, givenPayload: okCreate("Ada\tLovelace"), wantErr: bad, wantFields: []string{"name"}},
		{name: "name wrong type", givenSubject: contract.SubjectCreate, givenPayload: createWith("7", `"{EMAIL}"`, "36"), wantErr: bad, wantFields: []string{"name"}},
		// users.create: email
		{name: "email missing", givenSubject: contract.SubjectCreate, givenPayload: `{"name":"Ada","age":36}`, wantErr: bad, wantFields: []string{"email"}},
		{name: "email empty", givenSubject: contract.SubjectCreate, givenPayload: badEmail(""), wantErr: bad, wantFields: []string{"email"}},
		{name: "email only spaces", givenSubject: contract.SubjectCreate, givenPayload: badEmail("   "), wantErr: bad, wantFields: []string{"email"}},
		{name: "email malformed", givenSubject: contract.SubjectCreate, givenPayload: badEmail("ada"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email without domain", givenSubject: contract.SubjectCreate, givenPayload: badEmail("ada@"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email with display name", givenSubject: contract.SubjectCreate, givenPayload: badEmail("Ada <a@b.com>"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email in angle brackets", givenSubject: contract.SubjectCreate, givenPayload: badEmail("<a@b.com>"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email with two addresses", givenSubject: contract.SubjectCreate, givenPayload: badEmail("a@b.com, c@d.com"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email without a dot in the domain", givenSubject: contract.SubjectCreate, givenPayload: badEmail("ada@example"), wantErr: bad, wantFields: []string{"email"}},
		{name: "email 254 characters", givenSubject: contract.SubjectCreate, givenPayload: badEmail(ok254)},
		{name: "email 255 characters", givenSubject: contract.SubjectCreate, givenPayload: badEmail(long255), wantErr: bad, wantFields: []string{"email"}},
		// users.create: age
		{name: "age missing", givenSubject: contract.SubjectCreate, givenPayload: `{"name":"Ada","email":"{EMAIL}"}`, wantErr: bad, wantFields: []string{"age"}},
		{name: "age null", givenSubject: contract.SubjectCreate, givenPayload: badAge("null"), wantErr: bad, wantFields: []string{"age"}},
		{name: "age -1", givenSubject: contract.SubjectCreate, givenPayload: badAge("-1"), wantErr: bad, wantFields: []string{"age"}},
		{name: "age 151", givenSubject: contract.SubjectCreate, givenPayload: badAge("151"), wantErr: bad, wantFields: []string{"age"}},
		{name: "age 0", givenSubject: contract.SubjectCreate, givenPayload: badAge("0")},
		{name: "age 150", givenSubject: contract.SubjectCreate, givenPayload: badAge("150")},
		{name: "age wrong type", givenSubject: contract.SubjectCreate, givenPayload: badAge(`"x"`), wantErr: bad, wantFields: []string{"age"}},
		{name: "age fraction", givenSubject: contract.SubjectCreate, givenPayload: badAge("3.5"), wantErr: bad, wantFields: []string{"age"}},
		// users.create: the request as a whole
		{name: "every field wrong", givenSubject: contract.SubjectCreate, givenPayload: createWith(`""`, `"x"`, "200"), wantErr: bad, wantFields: []string{"name", "email", "age"}},
		{name: "empty payload", givenSubject: contract.SubjectCreate, givenPayload: "", wantErr: bad, wantFields: []string{"name", "email", "age"}},
		{name: "unknown field", givenSubject: contract.SubjectCreate, givenPayload: `{"name":"Ada","email":"{EMAIL}","age":36,"nickname":"A"}`, wantErr: bad, wantFields: []string{"nickname"}},
		{name: "malformed JSON", givenSubject: contract.SubjectCreate, givenPayload: `{"name":`, wantErr: bad, wantFields: []string{}},
		{name: "not JSON", givenSubject: contract.SubjectCreate, givenPayload: `name=Ada`, wantErr: bad, wantFields: []string{}},
		{name: "trailing data", givenSubject: contract.SubjectCreate, givenPayload: okCreate("Ada") + ` {}`, wantErr: bad, wantFields: []string{}},
		{name: "array instead of object", givenSubject: contract.SubjectCreate, givenPayload: `[]`, wantErr: bad, wantFields: []string{}},

		// users.get
		{name: "get ok", givenSubject: contract.SubjectGet, givenPayload: `{"id":"{ID}"}`},
		{name: "get id missing", givenSubject: contract.SubjectGet, givenPayload: `{}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get empty payload", givenSubject: contract.SubjectGet, givenPayload: ``, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id empty", givenSubject: contract.SubjectGet, givenPayload: `{"id":""}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id not a ULID", givenSubject: contract.SubjectGet, givenPayload: `{"id":"ada"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id lower case", givenSubject: contract.SubjectGet, givenPayload: `{"id":` + jsonString(strings.ToLower(unknownID)) + `}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id with a letter outside base32", givenSubject: contract.SubjectGet, givenPayload: `{"id":"0000000000000000000000000U"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id overflowing", givenSubject: contract.SubjectGet, givenPayload: `{"id":"80000000000000000000000000"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id with a space", givenSubject: contract.SubjectGet, givenPayload: `{"id":" {ID}"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id *", givenSubject: contract.SubjectGet, givenPayload: `{"id":"*"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id >", givenSubject: contract.SubjectGet, givenPayload: `{"id":">"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id a.b", givenSubject: contract.SubjectGet, givenPayload: `{"id":"a.b"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get id wrong type", givenSubject: contract.SubjectGet, givenPayload: `{"id":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "get unknown field", givenSubject: contract.SubjectGet, givenPayload: `{"id":"{ID}","ids":[]}`, wantErr: bad, wantFields: []string{"ids"}},
		{name: "get malformed JSON", givenSubject: contract.SubjectGet, givenPayload: `{"id"`, wantErr: bad, wantFields: []string{}},

		// users.update
		{name: "update ok", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"age":150}`},
		{name: "update name 100 characters", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"name":"` + name100 + `"}`},
		{name: "update no fields", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1}`, wantErr: bad, wantFields: []string{""}},
		{name: "update only null fields", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"name":null,"email":null,"age":null}`, wantErr: bad, wantFields: []string{""}},
		{name: "update version missing", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","age":1}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "update version 0", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":0,"age":1}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "update version -1", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":-1,"age":1}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "update id missing", givenSubject: contract.SubjectUpdate, givenPayload: `{"version":1,"age":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "update id wildcard", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":">","version":1,"age":1}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "update name empty", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"name":""}`, wantErr: bad, wantFields: []string{"name"}},
		{name: "update name only spaces", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"name":"  "}`, wantErr: bad, wantFields: []string{"name"}},
		{name: "update name 101 characters", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"name":"` + name100 + `x"}`, wantErr: bad, wantFields: []string{"name"}},
		{name: "update email malformed", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"email":"Ada <a@b.com>"}`, wantErr: bad, wantFields: []string{"email"}},
		{name: "update email empty", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"email":""}`, wantErr: bad, wantFields: []string{"email"}},
		{name: "update age 151", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"age":151}`, wantErr: bad, wantFields: []string{"age"}},
		{name: "update age -1", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"age":-1}`, wantErr: bad, wantFields: []string{"age"}},
		{name: "update age wrong type", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"age":"x"}`, wantErr: bad, wantFields: []string{"age"}},
		{name: "update everything wrong", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"x","version":0}`, wantErr: bad, wantFields: []string{"id", "version", ""}},
		{name: "update unknown field", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"{ID}","version":1,"created_at":"2020-01-01T00:00:00Z"}`, wantErr: bad, wantFields: []string{"created_at"}},

		// users.delete
		{name: "delete ok", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"{ID}","version":1}`},
		{name: "delete version -1", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"{ID}","version":-1}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "delete version wrong type", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"{ID}","version":"1"}`, wantErr: bad, wantFields: []string{"version"}},
		{name: "delete id missing", givenSubject: contract.SubjectDelete, givenPayload: `{}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "delete id a.b", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"a.b"}`, wantErr: bad, wantFields: []string{"id"}},
		{name: "delete id *", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"*"}`, wantErr: bad, wantFields: []string{"id"}},

		// users.list
		{name: "list limit 0 is refused, not taken as the default", givenSubject: contract.SubjectList, givenPayload: `{"limit":0}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list without a limit takes the default", givenSubject: contract.SubjectList, givenPayload: `{}`},
		{name: "list limit 1", givenSubject: contract.SubjectList, givenPayload: `{"limit":1}`},
		{name: "list limit 100", givenSubject: contract.SubjectList, givenPayload: `{"limit":100}`},
		{name: "list limit 101", givenSubject: contract.SubjectList, givenPayload: `{"limit":101}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list limit -1", givenSubject: contract.SubjectList, givenPayload: `{"limit":-1}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list after an unknown id", givenSubject: contract.SubjectList, givenPayload: `{"after":"` + unknownID + `"}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list after not an id", givenSubject: contract.SubjectList, givenPayload: `{"after":"ada"}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list after lower case", givenSubject: contract.SubjectList, givenPayload: `{"after":` + jsonString(strings.ToLower(unknownID)) + `}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list after wildcard", givenSubject: contract.SubjectList, givenPayload: `{"after":"*"}`, wantErr: bad, wantFields: []string{"after"}},
		{name: "list limit wrong with a good cursor", givenSubject: contract.SubjectList, givenPayload: `{"limit":101,"after":"` + unknownID + `"}`, wantErr: bad, wantFields: []string{"limit"}},
		{name: "list limit and cursor wrong", givenSubject: contract.SubjectList, givenPayload: `{"limit":101,"after":"x"}`, wantErr: bad, wantFields: []string{"limit", "after"}},
		{name: "list unknown field", givenSubject: contract.SubjectList, givenPayload: `{"offset":10}`, wantErr: bad, wantFields: []string{"offset"}},
		{name: "list limit wrong type", givenSubject: contract.SubjectList, givenPayload: `{"limit":"x"}`, wantErr: bad, wantFields: []string{"limit"}},
	}
	e := newEnv(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := mustCreate(t, e.client, "Seed", fmt.Sprintf("seed%d@example.com", i), 30)
			payload := strings.NewReplacer("{ID}", seed.ID, "{EMAIL}", fmt.Sprintf("case%d@example.com", i)).Replace(tc.givenPayload)
			_, err := e.client.Call(t.Context(), tc.givenSubject, []byte(payload))
			checkErr(t, err, tc.wantErr, tc.wantFields)
			if tc.wantErr != nil {
				// A refused request changes nothing.
				if got := mustGet(t, e.client, seed.ID); got != seed {
					t.Errorf("seed user changed by a refused request: %+v, was %+v", got, seed)
				}
			}
		})
	}
}

func TestIdempotencyKeyTooLong(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name     string
		givenKey string
		wantErr  error
	}{
		{name: "200 bytes", givenKey: strings.Repeat("k", 200)},
		{name: "201 bytes", givenKey: strings.Repeat("k", 201), wantErr: wire.ErrBadRequest},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := create(t.Context(), e.client, "Ada", fmt.Sprintf("ada%d@example.com", i), 36,
				wire.WithIdempotencyKey(tc.givenKey))
			var wantFields []string
			if tc.wantErr != nil {
				wantFields = []string{wire.HeaderIdempotencyKey}
			}
			checkErr(t, err, tc.wantErr, wantFields)
		})
	}
	if got := listAll(t, e.client, 100); len(got) != 1 {
		t.Errorf("list has %d users, want 1: the refused create made none", len(got))
	}
}

// TestPayloadLimits sends requests one byte over each endpoint's limit, and
// valid requests padded with spaces to exactly the limit.
func TestPayloadLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seed := mustCreate(t, e.client, "Seed", "seed@example.com", 30)
	pad := func(payload string, size int) []byte {
		if len(payload) > size {
			t.Fatalf("payload of %d bytes is over %d already", len(payload), size)
		}
		return []byte(payload + strings.Repeat(" ", size-len(payload)))
	}
	tests := []struct {
		name         string
		givenSubject string
		givenPayload string // padded with spaces to the limit (+1 when over)
		givenLimit   int
	}{
		{name: "create", givenSubject: contract.SubjectCreate, givenPayload: `{"name":"Ada","email":"ada@example.com","age":36}`, givenLimit: 16 << 10},
		{name: "update", givenSubject: contract.SubjectUpdate, givenPayload: `{"id":"` + seed.ID + `","version":1,"age":31}`, givenLimit: 16 << 10},
		{name: "get", givenSubject: contract.SubjectGet, givenPayload: `{"id":"` + seed.ID + `"}`, givenLimit: 4 << 10},
		{name: "list", givenSubject: contract.SubjectList, givenPayload: `{"limit":10}`, givenLimit: 4 << 10},
		{name: "delete", givenSubject: contract.SubjectDelete, givenPayload: `{"id":"` + seed.ID + `"}`, givenLimit: 4 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name+" over the limit", func(t *testing.T) {
			_, err := e.client.Call(t.Context(), tc.givenSubject, pad(tc.givenPayload, tc.givenLimit+1))
			checkErr(t, err, wire.ErrTooLarge, nil)
		})
		// The over-the-limit request above did nothing: at the limit,
		// the same request works (the update still sees version 1).
		t.Run(tc.name+" at the limit", func(t *testing.T) {
			_, err := e.client.Call(t.Context(), tc.givenSubject, pad(tc.givenPayload, tc.givenLimit))
			checkErr(t, err, nil, nil)
		})
	}
	t.Run("far over the limit", func(t *testing.T) {
		_, err := e.client.Call(t.Context(), contract.SubjectCreate, pad(`{}`, 1<<20))
		checkErr(t, err, wire.ErrTooLarge, nil)
	})
}
