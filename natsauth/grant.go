package natsauth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/devloop/switchboard/messaging"
)

// ClientInbox is the inbox prefix of the client role: the standard one,
// so that the nats CLI and other stock tools work with no flag. No other
// identity may subscribe under it.
const ClientInbox = "_INBOX"

// InboxPrefix is the inbox prefix of user's connections, "_INBOX_<user>":
// the first token of every reply subject it makes.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// Grant says what one identity does on NATS. The zero value may do
// nothing but ask JetStream for stream names.
type Grant struct {
	// User names the identity: its NATS user, its key file and, unless
	// Inbox is set, its inbox prefix (InboxPrefix(User)).
	User string
	// Inbox overrides the inbox prefix (ClientInbox for the client role).
	Inbox string
	// Description says who the identity is, for the configuration.
	Description string
	// Service is the micro service it registers, "" for none: it answers
	// $SRV discovery for that name.
	Service string
	// Serves are the subjects of its endpoints: it subscribes to them and
	// answers their requests.
	Serves []string
	// Calls are the endpoint subjects it sends requests to.
	Calls []string
	// Discovers lets it send $SRV discovery requests (nats micro ls).
	Discovers bool
	// Streams are the streams it owns: it declares them, writes their
	// subjects and reads them with any consumer.
	Streams []Stream
	// Buckets are the key-value buckets it owns; nobody else may read or
	// write them (an Admin may delete them, not read them).
	Buckets []string
	// Consumers are the durable consumers it runs: only it may create,
	// pull from, acknowledge or delete them; each may dead-letter on its
	// own dead-letter subject. A Durable of "*" stands for the durables
	// it names at run time on a stream it owns.
	Consumers []Consumer
	// Gets are streams of others whose messages it reads one by one.
	Gets []string
	// Reads are streams of others it reads with consumers of its own
	// (any name but another identity's durable) and message gets.
	Reads []string
	// DeadLetters lets it read and delete dead letters.
	DeadLetters bool
	// Admin lets it manage every stream and consumer: edit, purge (where
	// the stream allows it) and delete. It publishes no event either, and
	// reads no bucket of another identity.
	Admin bool
}

// Stream is a stream an identity owns.
type Stream struct {
	Name string
	// Subjects are the subjects the owner publishes into the stream.
	Subjects []string
	// Purge lets the owner purge it.
	Purge bool
}

// Consumer is a durable consumer an identity runs.
type Consumer struct {
	Stream, Durable string
	// Delete lets the owner delete it (to recreate it from scratch).
	Delete bool
}

// Permissions are what a nats-server enforces for one user: subjects it
// may publish to and subscribe to (deny wins over allow), and whether it
// may answer the requests it receives.
type Permissions struct {
	Publish, PublishDeny     []string
	Subscribe, SubscribeDeny []string
	Responses                bool
}

// Model is every identity of one NATS account.
type Model struct {
	// Account is the NATS account every identity is a user of.
	Account string
	Grants  []Grant
}

// DefaultAccount is the account of Switchboard's identities.
const DefaultAccount = "SWITCHBOARD"

// Users are the identities' names, in model order.
func (m Model) Users() []string {
	out := make([]string, 0, len(m.Grants))
	for _, g := range m.Grants {
		out = append(out, g.User)
	}
	return out
}

// Grant returns the grant of user.
func (m Model) Grant(user string) (Grant, bool) {
	for _, g := range m.Grants {
		if g.User == user {
			return g, true
		}
	}
	return Grant{}, false
}

// Check reports a model that cannot be rendered: users without a name or
// twice, names that cannot be a subject token, two owners of a stream,
// bucket or durable.
func (m Model) Check() error {
	seen := map[string]string{}
	own := func(kind, name, user string) error {
		k := kind + " " + name
		if other, ok := seen[k]; ok && other != user {
			return fmt.Errorf("natsauth: %s is granted to both %s and %s", k, other, user)
		}
		seen[k] = user
		return nil
	}
	for _, g := range m.Grants {
		if g.User == "" || strings.ContainsAny(g.User, ".*> \t") {
			return fmt.Errorf("natsauth: user %q: want a name without dots, wildcards or spaces", g.User)
		}
		if _, dup := seen["name "+g.User]; dup {
			return fmt.Errorf("natsauth: user %q appears twice", g.User)
		}
		seen["name "+g.User] = g.User
		if err := own("inbox", g.inbox(), g.User); err != nil {
			return err
		}
		for _, s := range g.Streams {
			if err := own("stream", s.Name, g.User); err != nil {
				return err
			}
		}
		for _, b := range g.Buckets {
			if err := own("bucket", b, g.User); err != nil {
				return err
			}
		}
		for _, c := range g.Consumers {
			if c.Durable == "*" {
				if !g.owns(c.Stream) {
					return fmt.Errorf("natsauth: %s: durable * on %s, a stream it does not own", g.User, c.Stream)
				}
				continue
			}
			if err := own("consumer", c.Stream+"."+c.Durable, g.User); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g Grant) inbox() string {
	if g.Inbox != "" {
		return g.Inbox
	}
	return InboxPrefix(g.User)
}

// InboxPrefix is the inbox prefix g's connections must use.
func (g Grant) InboxPrefix() string { return g.inbox() }

func (g Grant) owns(stream string) bool {
	return slices.ContainsFunc(g.Streams, func(s Stream) bool { return s.Name == stream }) ||
		slices.ContainsFunc(g.Buckets, func(b string) bool { return kvStream(b) == stream })
}

func kvStream(bucket string) string { return "KV_" + bucket }

// JetStream API subjects, as nats.go's jetstream package sends them.
const api = "$JS.API."

// readStream is what reading stream with message gets takes.
func readStream(stream string) []string {
	return []string{
		api + "STREAM.INFO." + stream,
		api + "STREAM.MSG.GET." + stream,
		api + "DIRECT.GET." + stream,
		api + "DIRECT.GET." + stream + ".>",
	}
}

// consumeStream is what running consumers of any name on stream takes:
// ordered consumers (the change feeds), ephemeral ones, durables.
func consumeStream(stream string) []string {
	return []string{
		api + "CONSUMER.CREATE." + stream,
		api + "CONSUMER.CREATE." + stream + ".>",
		api + "CONSUMER.INFO." + stream + ".*",
		api + "CONSUMER.DELETE." + stream + ".*",
		api + "CONSUMER.MSG.NEXT." + stream + ".*",
		"$JS.ACK." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// durable is what running one durable consumer takes, deleting it aside.
func durable(c Consumer) []string {
	base := c.Stream + "." + c.Durable
	return []string{
		api + "STREAM.INFO." + c.Stream,
		api + "CONSUMER.CREATE." + base,
		api + "CONSUMER.CREATE." + base + ".>",
		api + "CONSUMER.INFO." + base,
		api + "CONSUMER.MSG.NEXT." + base,
		"$JS.ACK." + base + ".>",
	}
}

// takeOver is what would let an identity change, steal from or delete
// another identity's durable.
func takeOver(c Consumer) []string {
	base := c.Stream + "." + c.Durable
	return []string{
		api + "CONSUMER.CREATE." + base,
		api + "CONSUMER.CREATE." + base + ".>",
		api + "CONSUMER.DELETE." + base,
		api + "CONSUMER.MSG.NEXT." + base,
		"$JS.ACK." + base + ".>",
	}
}

// readBucket is what reading a bucket's values takes (for denying it).
func readBucket(bucket string) []string {
	s := kvStream(bucket)
	return append(readStream(s)[1:], api+"CONSUMER.CREATE."+s, api+"CONSUMER.CREATE."+s+".>", api+"CONSUMER.DURABLE.CREATE."+s+".>")
}

// catalog lets tools list streams and consumers and read account limits.
var catalog = []string{
	api + "STREAM.LIST",
	api + "STREAM.INFO.*",
	api + "CONSUMER.NAMES.*",
	api + "CONSUMER.LIST.*",
}

// Permissions derives the permissions of user from the model: exactly
// what its grant needs, and none of what other grants keep to their
// owners. An unknown user gets nothing.
func (m Model) Permissions(user string) Permissions {
	g, ok := m.Grant(user)
	if !ok {
		return Permissions{}
	}
	var p Permissions
	pub := func(s ...string) { p.Publish = append(p.Publish, s...) }
	sub := func(s ...string) { p.Subscribe = append(p.Subscribe, s...) }

	// Its inbox, and nobody else's; the publisher asks for stream names
	// when a resend was refused, and declaring a bucket for the account's
	// limits.
	sub(g.inbox() + ".>")
	pub(api+"STREAM.NAMES", api+"INFO")

	if g.Service != "" {
		sub("$SRV.*", "$SRV.*."+g.Service, "$SRV.*."+g.Service+".*")
		p.Responses = true
	}
	if len(g.Serves) > 0 {
		sub(g.Serves...)
		p.Responses = true
	}
	pub(g.Calls...)
	if g.Discovers {
		pub("$SRV.>")
	}

	for _, s := range g.Streams {
		pub(s.Subjects...)
		pub(api+"STREAM.CREATE."+s.Name, api+"STREAM.UPDATE."+s.Name)
		pub(readStream(s.Name)...)
		pub(consumeStream(s.Name)...)
		if s.Purge {
			pub(api + "STREAM.PURGE." + s.Name)
		}
	}
	for _, b := range g.Buckets {
		st := kvStream(b)
		pub("$KV."+b+".>", api+"STREAM.CREATE."+st, api+"STREAM.UPDATE."+st)
		pub(readStream(st)...)
		pub(consumeStream(st)...)
	}
	consumes := false
	for _, c := range g.Consumers {
		consumes = true
		if c.Durable == "*" {
			pub(messaging.DeadLetterSubject(c.Stream, "*"))
			continue
		}
		pub(durable(c)...)
		if c.Delete {
			pub(api + "CONSUMER.DELETE." + c.Stream + "." + c.Durable)
		}
		pub(messaging.DeadLetterSubject(c.Stream, c.Durable))
	}
	dl := messaging.DefaultDeadLetterStream
	if consumes {
		// The consumer runtime declares the dead-letter stream.
		pub(api+"STREAM.INFO."+dl, api+"STREAM.CREATE."+dl)
	}
	for _, s := range g.Gets {
		pub(readStream(s)...)
	}
	for _, s := range g.Reads {
		pub(readStream(s)...)
		pub(consumeStream(s)...)
	}
	if g.DeadLetters {
		pub(readStream(dl)...)
		pub(api + "STREAM.MSG.DELETE." + dl)
	}
	if len(g.Reads) > 0 || g.Admin {
		pub(catalog...)
	}
	if g.Admin {
		pub(api + ">")
	}

	// What other identities keep to themselves.
	for _, o := range m.Grants {
		if o.User == g.User {
			continue
		}
		for _, c := range o.Consumers {
			if c.Durable == "*" {
				continue
			}
			p.PublishDeny = append(p.PublishDeny, takeOver(c)...)
		}
		for _, b := range o.Buckets {
			p.PublishDeny = append(p.PublishDeny, readBucket(b)...)
		}
		if o.inbox() != g.inbox() {
			p.SubscribeDeny = append(p.SubscribeDeny, o.inbox()+".>")
		}
	}
	p.Publish = dedupe(p.Publish)
	p.PublishDeny = dedupe(p.PublishDeny)
	p.Subscribe = dedupe(p.Subscribe)
	p.SubscribeDeny = dedupe(p.SubscribeDeny)
	return p
}

// dedupe drops repeats, keeping the first of each.
func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
