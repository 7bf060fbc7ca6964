package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
)

// dispatcher runs one delivery consumer per live webhook, so that each
// webhook has its own bounded concurrency and backoff, and a slow or dead
// receiver delays no other.
type dispatcher struct {
	js      jetstream.JetStream
	reg     *registry
	cfg     messaging.ConsumerConfig // template: Stream, Durable and filter are set per webhook
	handler func(context.Context, messaging.Event[contract.Task]) error
	// stopTimeout bounds stopping one consumer; deliveries still running
	// then are cancelled and redelivered later.
	stopTimeout time.Duration
	logger      *slog.Logger

	mu        sync.Mutex
	consumers map[string]*messaging.Consumer
	stopped   bool
}

// sync makes the consumers match the registry for webhook id: starts the
// consumer of a new webhook, stops that of a deleted one.
func (d *dispatcher) sync(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	_, live := d.reg.get(id)
	c, running := d.consumers[id]
	switch {
	case live && !running:
		cfg := d.cfg
		cfg.Stream = contract.Stream
		cfg.Durable = contract.Consumer(id)
		cfg.Description = "notifications: delivers to webhook " + id
		cfg.FilterSubjects = []string{contract.DeliverySubject(id)}
		cfg.Logger = d.logger.With(slog.String("webhook_id", id))
		c, err := messaging.Consume(ctx, d.js, cfg, d.handler)
		if err != nil {
			return fmt.Errorf("start deliveries to webhook %q: %w", id, err)
		}
		d.consumers[id] = c
	case !live && running:
		delete(d.consumers, id)
		sctx, cancel := context.WithTimeout(context.Background(), d.stopTimeout)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			d.logger.Warn("stopping deliveries of a deleted webhook", slog.String("webhook_id", id), slog.String("error", err.Error()))
		}
	}
	return nil
}

// forget deletes the durable consumer of webhook id, once it is stopped.
func (d *dispatcher) forget(ctx context.Context, id string) error {
	if err := d.js.DeleteConsumer(ctx, contract.Stream, contract.Consumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer of webhook %q: %w", id, err)
	}
	return nil
}

// stop stops every delivery consumer, in parallel, bounded by ctx.
func (d *dispatcher) stop(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	cs := make([]*messaging.Consumer, 0, len(d.consumers))
	for _, c := range d.consumers {
		cs = append(cs, c)
	}
	d.consumers = map[string]*messaging.Consumer{}
	d.mu.Unlock()
	return stopAll(ctx, cs)
}

// stopAll stops consumers in parallel, bounded by ctx.
func stopAll(ctx context.Context, cs []*messaging.Consumer) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range cs {
		wg.Go(func() {
			if err := c.Stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// running lists the running delivery consumers.
func (d *dispatcher) running() []*messaging.Consumer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*messaging.Consumer, 0, len(d.consumers))
	for _, c := range d.consumers {
		out = append(out, c)
	}
	return out
}
