package natsauth_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devloop/switchboard/natsauth"
)

// owner and reader are two services of a model: owner keeps a stream, a
// bucket and a durable on reader's stream.
var (
	owner = natsauth.Grant{
		User: "owner", Service: "owner", Serves: []string{"owner.get"},
		Streams:   []natsauth.Stream{{Name: "OWNED", Subjects: []string{"owner.events.>"}}},
		Buckets:   []string{"SECRETS"},
		Consumers: []natsauth.Consumer{{Stream: "READ", Durable: "owner-on-read"}},
	}
	reader = natsauth.Grant{
		User: "reader", Calls: []string{"owner.get"},
		Streams: []natsauth.Stream{{Name: "READ", Subjects: []string{"reader.events.>"}}},
		Gets:    []string{"OWNED"},
	}
)

func TestPermissions(t *testing.T) {
	m := natsauth.NewModel(owner, reader)
	o, r, c := m.Permissions("owner"), m.Permissions("reader"), m.Permissions(natsauth.ClientUser)
	for _, tt := range []struct {
		name  string
		list  []string
		given string
		want  bool
	}{
		{"owner writes its stream", o.Publish, "owner.events.>", true},
		{"owner runs its durable", o.Publish, "$JS.API.CONSUMER.MSG.NEXT.READ.owner-on-read", true},
		{"owner dead-letters for it", o.Publish, "deadletter.READ.owner-on-read", true},
		{"owner answers discovery", o.Subscribe, "$SRV.*.owner", true},
		{"owner serves its endpoint", o.Subscribe, "owner.get", true},
		{"owner's inbox", o.Subscribe, "_INBOX_owner.>", true},
		{"reader does not write owner's stream", r.Publish, "owner.events.>", false},
		{"reader reads owner's messages", r.Publish, "$JS.API.STREAM.MSG.GET.OWNED", true},
		{"reader calls owner.get", r.Publish, "owner.get", true},
		{"reader is kept from owner's durable", r.PublishDeny, "$JS.API.CONSUMER.MSG.NEXT.READ.owner-on-read", true},
		{"reader is kept from the bucket", r.PublishDeny, "$JS.API.DIRECT.GET.KV_SECRETS.>", true},
		{"reader is kept from owner's inbox", r.SubscribeDeny, "_INBOX_owner.>", true},
		{"client uses the standard inbox", c.Subscribe, "_INBOX.>", true},
		{"client calls every endpoint", c.Publish, "owner.get", true},
		{"client reads the dead letters", c.Publish, "$JS.API.STREAM.MSG.GET.DEADLETTER", true},
		{"client writes no event", c.Publish, "reader.events.>", false},
		{"client purges nothing", c.Publish, "$JS.API.STREAM.PURGE.READ", false},
	} {
		if got := slices.Contains(tt.list, tt.given); got != tt.want {
			t.Errorf("%s: %q in %q = %v, want %v", tt.name, tt.given, tt.list, got, tt.want)
		}
	}
	if !o.Responses || r.Responses {
		t.Errorf("responses: owner %v, reader %v; want only the one that serves", o.Responses, r.Responses)
	}
	if p := m.Permissions("nobody"); len(p.Publish)+len(p.Subscribe) != 0 {
		t.Errorf("an unknown user gets %+v, want nothing", p)
	}
}

func TestCheck(t *testing.T) {
	for name, m := range map[string]natsauth.Model{
		"two owners of a stream": {Grants: []natsauth.Grant{owner, {User: "other", Streams: owner.Streams}}},
		"a user twice":           {Grants: []natsauth.Grant{owner, owner}},
		"a user with a dot":      {Grants: []natsauth.Grant{{User: "a.b"}}},
		"a durable * elsewhere":  {Grants: []natsauth.Grant{{User: "x", Consumers: []natsauth.Consumer{{Stream: "READ", Durable: "*"}}}}},
	} {
		if err := m.Check(); err == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
	if err := natsauth.NewModel(owner, reader).Check(); err != nil {
		t.Errorf("a good model: %v", err)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first, err := natsauth.LoadKeys(dir, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := natsauth.LoadKeys(dir, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b"} {
		p1, _ := first.Public(u)
		p2, _ := again.Public(u)
		if p1 == "" || p1 != p2 || !strings.HasPrefix(p1, "U") {
			t.Errorf("%s: public keys %q then %q, want the same user key", u, p1, p2)
		}
		info, err := os.Stat(filepath.Join(dir, natsauth.KeyFile(u)))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file %v, %v; want mode 0600", u, info, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "c.nk"), []byte("SUAsecret-but-not-a-seed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.LoadKeys(dir, []string{"c"}); err == nil || strings.Contains(err.Error(), "secret-but") {
		t.Errorf("a bad seed: %v, want an error that does not show it", err)
	}
}

func TestAccountsRender(t *testing.T) {
	m := natsauth.NewModel(owner, reader)
	keys, err := natsauth.GenerateKeys(m.Users())
	if err != nil {
		t.Fatal(err)
	}
	text, err := m.Accounts(keys)
	if err != nil {
		t.Fatal(err)
	}
	for u, seed := range keys {
		pub, _ := keys.Public(u)
		if !strings.Contains(text, pub) || strings.Contains(text, string(seed)) {
			t.Errorf("%s: the configuration must hold its public key and never its seed", u)
		}
	}
	if strings.Contains(text, `\u003e`) {
		t.Error("JSON escapes in the configuration: nats-server does not read them")
	}
}
