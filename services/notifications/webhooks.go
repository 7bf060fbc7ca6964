package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

// registry is this replica's view of the webhooks bucket. Entries keep the
// revision they were read at, and deleted ones stay as tombstones, so that
// a change applied early (by the endpoint that made it) is not undone by
// the watcher delivering an older revision later.
type registry struct {
	mu    sync.RWMutex
	hooks map[string]entry
}

type entry struct {
	hook    contract.Webhook
	rev     uint64
	deleted bool
}

func newRegistry() *registry { return &registry{hooks: map[string]entry{}} }

// apply records e unless a later revision of its webhook is known.
func (r *registry) apply(id string, e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.hooks[id]; ok && cur.rev >= e.rev {
		return
	}
	r.hooks[id] = e
}

func (r *registry) get(id string) (contract.Webhook, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.hooks[id]
	return e.hook, ok && !e.deleted
}

// all returns the live webhooks sorted by id.
func (r *registry) all() []contract.Webhook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []contract.Webhook
	for _, e := range r.hooks {
		if !e.deleted {
			out = append(out, e.hook)
		}
	}
	slices.SortFunc(out, func(a, b contract.Webhook) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// matching returns the webhooks with a filter matching subject.
func (r *registry) matching(subject string) []contract.Webhook {
	var out []contract.Webhook
	for _, h := range r.all() {
		if slices.ContainsFunc(h.Subjects, func(f string) bool { return wire.MatchSubject(f, subject) }) {
			out = append(out, h)
		}
	}
	return out
}

// watch applies every change of the bucket to reg and calls changed with
// the webhook id, until ctx ends. It returns once the bucket's current
// content is applied; the watching goes on in the background until done
// is closed.
func watch(ctx context.Context, kv jetstream.KeyValue, seal *sealer, reg *registry, changed func(id string), onErr func(error)) (done <-chan struct{}, err error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", contract.Bucket, err)
	}
	synced := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer func() { _ = w.Stop() }()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case kve, ok := <-w.Updates():
				if !ok {
					return
				}
				if kve == nil { // the initial values are all in
					if initial {
						initial = false
						close(synced)
					}
					continue
				}
				id := kve.Key()
				e := entry{rev: kve.Revision()}
				if kve.Operation() == jetstream.KeyValuePut {
					h, err := decodeWebhook(seal, id, kve.Value())
					if err != nil {
						onErr(fmt.Errorf("webhook %q in %s: %w", id, contract.Bucket, err))
						continue
					}
					e.hook = h
				} else {
					e.deleted = true
				}
				reg.apply(id, e)
				changed(id)
			}
		}
	}()
	select {
	case <-synced:
		return finished, nil
	case <-finished:
		return nil, fmt.Errorf("watch %s: stopped before its initial values", contract.Bucket)
	case <-ctx.Done():
		return nil, fmt.Errorf("watch %s: %w", contract.Bucket, ctx.Err())
	}
}

// fileWebhooks is the webhooks file: [[webhook]] tables.
type fileWebhooks struct {
	Webhook []contract.Webhook `toml:"webhook"`
}

// loadFile reads and checks the webhooks in path. Errors name the webhook
// by position and id, never its secret.
func loadFile(path string, allowPrivate bool) ([]contract.Webhook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhooks file: %w", err)
	}
	var f fileWebhooks
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("webhooks file %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		return nil, fmt.Errorf("webhooks file %s: unknown key %s (want [[webhook]] tables with id, url, secret, subjects, description)", path, undec[0])
	}
	seen := map[string]bool{}
	for i, h := range f.Webhook {
		if err := checkWebhook(h, allowPrivate); err != nil {
			return nil, fmt.Errorf("webhooks file %s: webhook #%d (id %q): %w", path, i+1, h.ID, err)
		}
		if seen[h.ID] {
			return nil, fmt.Errorf("webhooks file %s: webhook #%d: id %q appears twice", path, i+1, h.ID)
		}
		seen[h.ID] = true
	}
	return f.Webhook, nil
}

// checkWebhook validates h and, when private addresses are refused, that
// its URL is not a literal private address.
func checkWebhook(h contract.Webhook, allowPrivate bool) error {
	var v wire.Violations
	if err := h.Validate(); err != nil {
		var e *wire.Error
		if !errors.As(err, &e) {
			return err
		}
		v = e.Details
	}
	if !allowPrivate {
		if u, err := url.Parse(h.URL); err == nil {
			if ip, err := netip.ParseAddr(u.Hostname()); err == nil && checkPublic(ip) != nil {
				v.Add("url", "targets the private address %s, which this deployment refuses (webhook-private-addresses)", ip)
			}
		}
	}
	return v.Err()
}

// Domain errors of the webhooks core; endpoints.go maps them onto wire
// codes.
var (
	ErrWebhookNotFound = errors.New("webhook not found")
	ErrWebhookChanged  = errors.New("webhook changed meanwhile; try again")
	ErrNoTask          = errors.New("the dead letter holds no delivery task")
)

// hooks is the core of the service: the webhooks in their bucket, this
// replica's registry of them, and the delivery consumer each has. The
// endpoints adapt it in a few lines.
type hooks struct {
	kv           jetstream.KeyValue
	seal         *sealer
	reg          *registry
	disp         *dispatcher
	tasks        jetstream.Stream // NOTIFICATIONS, the delivery tasks
	allowPrivate bool
}

// list returns the webhooks, without their secrets.
func (h *hooks) list() []contract.View {
	out := []contract.View{}
	for _, w := range h.reg.all() {
		out = append(out, w.View())
	}
	return out
}

// put creates or replaces webhook w and starts its deliveries.
func (h *hooks) put(ctx context.Context, w contract.Webhook) (contract.View, error) {
	if err := checkWebhook(w, h.allowPrivate); err != nil {
		return contract.View{}, err
	}
	rev, err := putWebhook(ctx, h.kv, h.seal, w)
	if err != nil {
		return contract.View{}, err
	}
	// Apply it here at once rather than when the watcher sees it, so
	// events published right after the reply reach it.
	h.reg.apply(w.ID, entry{hook: w, rev: rev})
	if err := h.disp.sync(ctx, w.ID); err != nil {
		return contract.View{}, err
	}
	return w.View(), nil
}

// remove deletes webhook id, its delivery consumer and the tasks still
// queued for it. Its dead letters stay, for the record.
func (h *hooks) remove(ctx context.Context, id string) error {
	cur, err := h.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("webhook %q: %w", id, ErrWebhookNotFound)
	}
	if err != nil {
		return fmt.Errorf("get webhook %q: %w", id, err)
	}
	if err := h.kv.Delete(ctx, id, jetstream.LastRevision(cur.Revision())); err != nil {
		if messaging.IsWrongLastSequence(err) {
			return fmt.Errorf("webhook %q: %w", id, ErrWebhookChanged)
		}
		return fmt.Errorf("delete webhook %q: %w", id, err)
	}
	// The delete marker's revision is above cur's: enough to order it
	// after every put this replica has seen.
	h.reg.apply(id, entry{rev: cur.Revision() + 1, deleted: true})
	if err := h.disp.sync(ctx, id); err != nil {
		return err
	}
	if err := h.disp.forget(ctx, id); err != nil {
		return err
	}
	if err := h.tasks.Purge(ctx, jetstream.WithPurgeSubject(contract.DeliverySubject(id))); err != nil {
		return fmt.Errorf("purge tasks of webhook %q: %w", id, err)
	}
	return nil
}

// stored is a webhook as the bucket holds it: its secrets sealed (see
// sealer), so that reading the bucket does not reveal them.
type stored struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Secret         string   `json:"secret_sealed"`
	PreviousSecret string   `json:"previous_secret_sealed,omitempty"`
	Subjects       []string `json:"subjects"`
	Description    string   `json:"description,omitempty"`
}

func encodeWebhook(seal *sealer, h contract.Webhook) ([]byte, error) {
	sec, err := seal.seal(h.ID, h.Secret)
	if err != nil {
		return nil, err
	}
	prev, err := seal.seal(h.ID, h.PreviousSecret)
	if err != nil {
		return nil, err
	}
	return json.Marshal(stored{ID: h.ID, URL: h.URL, Secret: sec, PreviousSecret: prev, Subjects: h.Subjects, Description: h.Description})
}

func decodeWebhook(seal *sealer, key string, data []byte) (contract.Webhook, error) {
	var st stored
	if err := json.Unmarshal(data, &st); err != nil {
		return contract.Webhook{}, errors.New("not a stored webhook")
	}
	if st.Secret == "" {
		// Written before secrets were sealed: never deliver unsigned.
		return contract.Webhook{}, errors.New("no sealed secret (stored by an earlier version): put the webhook again")
	}
	sec, err := seal.open(key, st.Secret)
	if err != nil {
		return contract.Webhook{}, err
	}
	prev, err := seal.open(key, st.PreviousSecret)
	if err != nil {
		return contract.Webhook{}, err
	}
	return contract.Webhook{ID: st.ID, URL: st.URL, Secret: sec, PreviousSecret: prev, Subjects: st.Subjects, Description: st.Description}, nil
}

// putWebhook stores h unless the bucket holds it already, and returns the
// revision it has.
func putWebhook(ctx context.Context, kv jetstream.KeyValue, seal *sealer, h contract.Webhook) (uint64, error) {
	if cur, err := kv.Get(ctx, h.ID); err == nil {
		if same, err := decodeWebhook(seal, h.ID, cur.Value()); err == nil && slices.Equal(same.Subjects, h.Subjects) &&
			same.ID == h.ID && same.URL == h.URL && same.Secret == h.Secret && same.PreviousSecret == h.PreviousSecret && same.Description == h.Description {
			return cur.Revision(), nil
		}
	}
	data, err := encodeWebhook(seal, h)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Put(ctx, h.ID, data)
	if err != nil {
		return 0, fmt.Errorf("put webhook %q: %w", h.ID, err)
	}
	return rev, nil
}
