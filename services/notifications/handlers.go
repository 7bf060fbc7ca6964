package notifications

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications/contract"
	"github.com/devloop/switchboard/wire"
)

func handleList(reg *registry) func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
	return func(context.Context, contract.ListRequest) (contract.ListResponse, error) {
		out := contract.ListResponse{Webhooks: []contract.View{}}
		for _, h := range reg.all() {
			out.Webhooks = append(out.Webhooks, h.View())
		}
		return out, nil
	}
}

func handlePut(s *Service) func(context.Context, contract.Webhook) (contract.View, error) {
	return func(ctx context.Context, h contract.Webhook) (contract.View, error) {
		if err := checkWebhook(h, s.allowPrivate); err != nil {
			return contract.View{}, err
		}
		rev, err := putWebhook(ctx, s.kv, h)
		if err != nil {
			return contract.View{}, err
		}
		// Apply it here at once rather than when the watcher sees it, so
		// events published right after the reply reach it.
		s.reg.apply(h.ID, entry{hook: h, rev: rev})
		if err := s.disp.sync(ctx, h.ID); err != nil {
			return contract.View{}, err
		}
		return h.View(), nil
	}
}

func handleDelete(s *Service) func(context.Context, contract.DeleteRequest) (contract.DeleteResponse, error) {
	return func(ctx context.Context, req contract.DeleteRequest) (contract.DeleteResponse, error) {
		cur, err := s.kv.Get(ctx, req.ID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return contract.DeleteResponse{}, wire.Errorf(wire.CodeNotFound, "webhook %q not found", req.ID)
		}
		if err != nil {
			return contract.DeleteResponse{}, fmt.Errorf("get webhook %q: %w", req.ID, err)
		}
		if err := s.kv.Delete(ctx, req.ID, jetstream.LastRevision(cur.Revision())); err != nil {
			if messaging.IsWrongLastSequence(err) {
				return contract.DeleteResponse{}, wire.Errorf(wire.CodeConflict, "webhook %q changed meanwhile; try again", req.ID)
			}
			return contract.DeleteResponse{}, fmt.Errorf("delete webhook %q: %w", req.ID, err)
		}
		// The delete marker's revision is above cur's: enough to order
		// it after every put this replica has seen.
		s.reg.apply(req.ID, entry{rev: cur.Revision() + 1, deleted: true})
		if err := s.disp.sync(ctx, req.ID); err != nil {
			return contract.DeleteResponse{}, err
		}
		// Its consumer is stopped: drop it and the tasks still queued.
		// Dead letters stay, for the record.
		if err := s.js.DeleteConsumer(ctx, contract.Stream, contract.Consumer(req.ID)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return contract.DeleteResponse{}, fmt.Errorf("delete consumer of webhook %q: %w", req.ID, err)
		}
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(contract.DeliverySubject(req.ID))); err != nil {
			return contract.DeleteResponse{}, fmt.Errorf("purge tasks of webhook %q: %w", req.ID, err)
		}
		return contract.DeleteResponse{ID: req.ID, Deleted: true}, nil
	}
}

func handleDeadLetters(dl deadLetters) func(context.Context, contract.DeadLettersRequest) (contract.DeadLettersResponse, error) {
	return func(ctx context.Context, req contract.DeadLettersRequest) (contract.DeadLettersResponse, error) {
		limit := req.Limit
		if limit == 0 {
			limit = contract.DefaultLimit
		}
		page, next, err := dl.list(ctx, req.WebhookID, req.After, limit)
		if err != nil {
			return contract.DeadLettersResponse{}, err
		}
		return contract.DeadLettersResponse{DeadLetters: page, Next: next}, nil
	}
}

func handleReplay(dl deadLetters) func(context.Context, contract.ReplayRequest) (contract.ReplayResponse, error) {
	return func(ctx context.Context, req contract.ReplayRequest) (contract.ReplayResponse, error) {
		if req.All {
			n, err := dl.replayAll(ctx, req.WebhookID)
			return contract.ReplayResponse{Replayed: n}, err
		}
		if err := dl.replay(ctx, req.ID); err != nil {
			return contract.ReplayResponse{}, err
		}
		return contract.ReplayResponse{Replayed: 1}, nil
	}
}
