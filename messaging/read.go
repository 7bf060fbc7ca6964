package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LastMsg returns the last message of stream whose subject matches filter
// (wildcards allowed), or jetstream.ErrMsgNotFound. Unlike a direct get,
// which any replica answers, even one that is behind, the stream leader
// answers it, so it reflects every write acknowledged before it was sent:
// read-your-writes on replicated streams.
func LastMsg(ctx context.Context, js jetstream.JetStream, stream, filter string) (*jetstream.RawStreamMsg, error) {
	return leaderGet(ctx, js, stream, filter, msgGetRequest{LastFor: filter})
}

// NextMsg returns the first message of stream at or after sequence seq
// whose subject matches filter, or jetstream.ErrMsgNotFound; like LastMsg,
// the stream leader answers it.
func NextMsg(ctx context.Context, js jetstream.JetStream, stream, filter string, seq uint64) (*jetstream.RawStreamMsg, error) {
	return leaderGet(ctx, js, stream, filter, msgGetRequest{Seq: seq, NextFor: filter})
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

func leaderGet(ctx context.Context, js jetstream.JetStream, stream, filter string, r msgGetRequest) (*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, js.Options().DefaultTimeout)
		defer cancel()
	}
	reply, err := requestLeader(ctx, js.Conn(), apiPrefix(js)+"STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", filter, stream, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error,omitempty"`
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs,omitempty"`
			Data     []byte    `json:"data,omitempty"`
			Time     time.Time `json:"time"`
		} `json:"message,omitempty"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", filter, stream, err)
	}
	if resp.Error != nil {
		switch resp.Error.ErrorCode {
		case jetstream.JSErrCodeMessageNotFound:
			return nil, jetstream.ErrMsgNotFound
		case jetstream.JSErrCodeStreamNotFound:
			return nil, jetstream.ErrStreamNotFound
		}
		return nil, fmt.Errorf("read %s on %s: %w", filter, stream, resp.Error)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("read %s on %s: %w", filter, stream, jetstream.ErrInvalidJetStreamResponse)
	}
	m := &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Sequence, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("read %s on %s: headers: %w", filter, stream, err)
		}
	}
	return m, nil
}

// leaderAttempt bounds one request to a stream leader. A request sent
// while the stream elects a leader, or lost in a reconnect, is never
// answered: it is sent again after this long rather than waited for until
// the caller's deadline.
const leaderAttempt = time.Second

// requestLeader sends a read request (safe to repeat) to a stream leader
// until it is answered or ctx ends: each attempt waits at most
// leaderAttempt, and one that times out or finds no responder is sent
// again after a short pause.
func requestLeader(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, leaderAttempt)
		reply, err := nc.RequestWithContext(actx, subject, data)
		cancel()
		if err == nil || ctx.Err() != nil ||
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
			return reply, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// apiPrefix is the subject prefix of js's API requests.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}
