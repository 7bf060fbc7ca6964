package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Discovery timing. A refresh asks every service for its info and
// collects the replies until none has come for replyGap (or for
// firstReply when none came at all), at most collectMax.
const (
	replyGap   = 100 * time.Millisecond
	firstReply = 250 * time.Millisecond
	collectMax = time.Second
	// minKick is the least time between two refreshes that requests
	// asked for (a path no route matches, a no-responders reply).
	minKick = time.Second
)

// instance is one running service instance, as its last info reply said.
type instance struct {
	info micro.Info
	sum  [32]byte // of the reply, to notice a change
	seen int      // the round that last saw it
}

// discovery keeps the route table current: it refreshes every interval,
// and sooner when a request asks for it.
type discovery struct {
	nc       *nats.Conn
	logger   *slog.Logger
	interval time.Duration
	// onTable is called with each new table (to build what depends on
	// it, such as the OpenAPI document) before the table is published.
	onTable func(*table)

	table atomic.Pointer[table]

	mu        sync.Mutex
	instances map[string]*instance // by service id
	round     int
	lastOK    time.Time // when the last refresh that reached NATS ended
	lastStart time.Time
	next      chan struct{} // closed when the refresh after the current one ends

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newDiscovery(nc *nats.Conn, interval time.Duration, logger *slog.Logger, onTable func(*table)) *discovery {
	d := &discovery{
		nc: nc, logger: logger, interval: interval, onTable: onTable,
		instances: map[string]*instance{},
		next:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	empty := &table{}
	onTable(empty)
	d.table.Store(empty)
	return d
}

// start runs one refresh, so the table is filled when start returns, then
// keeps refreshing in the background until close.
func (d *discovery) start(ctx context.Context) {
	d.refreshRound(ctx)
	go d.loop()
}

func (d *discovery) close() {
	close(d.stop)
	<-d.done
}

func (d *discovery) loop() {
	defer close(d.done)
	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		case <-d.kick:
			// Asked for: at most one such refresh per minKick.
			d.mu.Lock()
			wait := minKick - time.Since(d.lastStart)
			d.mu.Unlock()
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-d.stop:
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		d.refreshRound(ctx)
	}
}

// refreshRound runs one refresh and wakes those waiting for it.
func (d *discovery) refreshRound(ctx context.Context) {
	d.mu.Lock()
	done := d.next
	d.next = make(chan struct{})
	d.lastStart = time.Now()
	d.mu.Unlock()
	defer close(done)
	if err := d.refresh(ctx); err != nil && ctx.Err() == nil {
		d.logger.Warn("gateway: discovery failed; keeping the routes known", slog.String("error", err.Error()))
	}
}

// refreshSoon asks for a refresh without waiting for it. Requests for
// refreshes are merged, and served at most once per minKick: a flood of
// unknown paths costs one refresh a second, not one each.
func (d *discovery) refreshSoon() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// fresh asks for a refresh and waits for one that starts after the call,
// bounded by ctx; it reports whether it got one.
func (d *discovery) fresh(ctx context.Context) bool {
	d.mu.Lock()
	next := d.next
	d.mu.Unlock()
	d.refreshSoon()
	select {
	case <-next:
		return true
	case <-ctx.Done():
		return false
	}
}

// ready is nil while discovery works: the last refresh that reached NATS
// ended less than three intervals ago.
func (d *discovery) ready() error {
	d.mu.Lock()
	last := d.lastOK
	d.mu.Unlock()
	switch {
	case last.IsZero():
		return errors.New("discovery: no refresh has reached NATS yet")
	case time.Since(last) > 3*d.interval+collectMax:
		return fmt.Errorf("discovery: last refresh %s ago (interval %s)", time.Since(last).Round(time.Millisecond), d.interval)
	}
	return nil
}

// refresh asks every service instance for its info. An instance that does
// not answer is pinged directly: when nobody answers that, it is gone at
// once; when it answers the ping, it stays; otherwise it is dropped once it
// has missed two rounds in a row. The table
// is rebuilt only when something changed.
func (d *discovery) refresh(ctx context.Context) error {
	replies, err := d.collect(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.round++
	round := d.round
	changed := false
	for _, data := range replies {
		var in micro.Info
		if json.Unmarshal(data, &in) != nil || in.Type != micro.InfoResponseType || in.ID == "" || in.Name == "" {
			continue
		}
		sum := sha256.Sum256(data)
		old, ok := d.instances[in.ID]
		if !ok || old.sum != sum {
			changed = true
			if !ok {
				d.logger.Info("gateway: service instance found", slog.Group("instance", slog.String("service", in.Name), slog.String("version", in.Version), slog.String("id", in.ID)))
			}
		}
		d.instances[in.ID] = &instance{info: in, sum: sum, seen: round}
	}
	var missing []*instance
	for _, in := range d.instances {
		if in.seen != round {
			missing = append(missing, in)
		}
	}
	d.mu.Unlock()

	// Outside the lock: each ping may wait.
	var gone, alive []string
	for _, in := range missing {
		switch d.ping(ctx, in.info) {
		case pingGone:
			gone = append(gone, in.info.ID)
		case pingAlive:
			alive = append(alive, in.info.ID)
		default:
			if round-in.seen >= 2 {
				gone = append(gone, in.info.ID)
			}
		}
	}

	d.mu.Lock()
	for _, id := range alive {
		if in, ok := d.instances[id]; ok {
			in.seen = round
		}
	}
	for _, id := range gone {
		if in, ok := d.instances[id]; ok {
			d.logger.Info("gateway: service instance gone", slog.Group("instance", slog.String("service", in.info.Name), slog.String("version", in.info.Version), slog.String("id", id)))
			delete(d.instances, id)
			changed = true
		}
	}
	d.lastOK = time.Now()
	var infos []micro.Info
	if changed {
		for _, in := range d.instances {
			infos = append(infos, in.info)
		}
	}
	d.mu.Unlock()

	if changed {
		t := buildTable(infos, d.logger)
		d.onTable(t)
		d.table.Store(t)
	}
	return nil
}

// collect sends $SRV.INFO and gathers the replies.
func (d *discovery) collect(ctx context.Context) ([][]byte, error) {
	var (
		mu      sync.Mutex
		replies [][]byte
	)
	arrived := make(chan struct{}, 1)
	inbox := d.nc.NewRespInbox()
	sub, err := d.nc.Subscribe(inbox, func(m *nats.Msg) {
		mu.Lock()
		replies = append(replies, bytes.Clone(m.Data))
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	subject, _ := micro.ControlSubject(micro.InfoVerb, "", "")
	if err := d.nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("discovery: %s: %w", subject, err)
	}
	fctx, cancel := context.WithTimeout(ctx, collectMax)
	defer cancel()
	if err := d.nc.FlushWithContext(fctx); err != nil {
		return nil, fmt.Errorf("discovery: flush: %w", err)
	}
	limit := time.NewTimer(collectMax)
	defer limit.Stop()
	quiet := time.NewTimer(firstReply)
	defer quiet.Stop()
wait:
	for {
		select {
		case <-arrived:
			quiet.Reset(replyGap)
		case <-quiet.C:
			break wait
		case <-limit.C:
			break wait
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(replies), nil
}

type pingResult int

const (
	pingUnsure pingResult = iota // no answer in time, or an error
	pingAlive                    // it answered
	pingGone                     // NATS says nobody subscribes
)

// ping asks in alone whether it is there. "No responders" comes back at
// once when it is gone; a slow answer or an error proves nothing.
func (d *discovery) ping(ctx context.Context, in micro.Info) pingResult {
	subject, err := micro.ControlSubject(micro.PingVerb, in.Name, in.ID)
	if err != nil {
		return pingUnsure
	}
	ctx, cancel := context.WithTimeout(ctx, firstReply)
	defer cancel()
	_, err = d.nc.RequestWithContext(ctx, subject, nil)
	switch {
	case err == nil:
		return pingAlive
	case errors.Is(err, nats.ErrNoResponders):
		return pingGone
	}
	return pingUnsure
}

// current returns the table in use.
func (d *discovery) current() *table { return d.table.Load() }
