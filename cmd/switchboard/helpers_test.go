package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that the goroutine under test can write while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// banner is what switchboard prints to stdout once it is ready.
type banner struct {
	natsURL natsTarget
	opsURL  string
}

// natsTarget is how the nats CLI reaches a switchboard: its URL, and the
// nkey seed file of the identity it connects as ("" for none).
type natsTarget struct {
	url, nkey string
}

// as is t connecting with the nkey file of another identity.
func (t natsTarget) as(nkey string) natsTarget { return natsTarget{url: t.url, nkey: nkey} }

var (
	natsURLLine = regexp.MustCompile(`(?m)^  NATS URL:  (\S+)   \(try: nats (?:--server \S+ )?(?:--nkey (\S+) )?`)
	opsURLLine  = regexp.MustCompile(`(?m)^  ops HTTP:  (\S+)`)
	lastLine    = regexp.MustCompile(`(?m)^  services:  .*\n`)
)

// parseBanner returns the banner in out, or false while it is incomplete.
func parseBanner(out string) (banner, bool) {
	if !strings.Contains(out, " is ready\n") || !lastLine.MatchString(out) {
		return banner{}, false
	}
	n, o := natsURLLine.FindStringSubmatch(out), opsURLLine.FindStringSubmatch(out)
	if n == nil || o == nil {
		return banner{}, false
	}
	return banner{natsURL: natsTarget{url: n[1], nkey: n[2]}, opsURL: o[1]}, true
}

// getJSON GETs url and decodes the JSON body.
func getJSON(ctx context.Context, url string) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: Content-Type %q, want application/json", url, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: decode body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// jsonRecords decodes every line of logs as a JSON object, failing the test
// on a line that is not one: with --log-format json nothing else may appear.
func jsonRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not a JSON object: %v\n%s", err, line)
		}
		recs = append(recs, rec)
	}
	return recs
}

// findRecord returns the first record holding every key/value of want.
func findRecord(recs []map[string]any, want map[string]any) (map[string]any, bool) {
	for _, rec := range recs {
		match := true
		for k, v := range want {
			if rec[k] != v {
				match = false
				break
			}
		}
		if match {
			return rec, true
		}
	}
	return nil, false
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
