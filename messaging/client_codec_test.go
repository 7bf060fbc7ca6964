package messaging_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/devloop/switchboard/wire"
)

// codecCase is one reply shape the typed clients decode.
type codecCase struct {
	ID      string            `json:"id"`
	Email   string            `json:"email,omitempty"`
	Count   int64             `json:"count,string"`
	Created time.Time         `json:"created_at"`
	Deleted *time.Time        `json:"deleted_at,omitempty"`
	Tags    []string          `json:"tags"`
	Attrs   map[string]string `json:"attrs"`
	Any     any               `json:"any"`
	Raw     json.RawMessage   `json:"raw,omitempty"`
	Inner   struct {
		N float64 `json:"n"`
	} `json:"inner"`
}

// The Client's codec (JSON v2 in its v1 mode) must decode and encode
// exactly as encoding/json does, which wire.Call uses for any other
// Caller: a reply that decodes one way through a messaging.Client must
// decode the same way through any Caller, and a request's bytes must not
// depend on the Caller.
func TestClientCodecIsEncodingJSON(t *testing.T) {
	c := newClient(t, connect(t, startServer(t)))
	var _ wire.Codec = c

	replies := []string{
		`{"id":"u1","email":"a@example.com","count":"7","created_at":"2026-12-04T10:00:00.123456789Z","tags":["a","b"],"attrs":{"k":"v"},"any":{"x":[1,"y",null,true]},"raw":{"z":1},"inner":{"n":1.5}}`,
		`{"ID":"case-insensitive","EMAIL":"b@example.com","Inner":{"N":2}}`, // v1 matches names without case
		`{"id":"unknown-fields","later":{"added":"by a newer service"}}`,    // ignored, not an error
		`{"id":"dup","id":"last wins"}`,                                     // v1: the last duplicate wins
		`{"id":null,"tags":null,"attrs":null,"deleted_at":null,"any":null}`, // null leaves a value as it is
		`{"id":"\ud800 lone surrogate","email":"tab\there"}`,                // v1 replaces invalid UTF-16
		`{"id":"u2","deleted_at":"2026-12-04T10:00:00+01:00","any":12345678901234567890}`,
		`{"id":1}`,                     // wrong type: an error on both
		`{"id":"u3","count":7}`,        // ,string wants a string: an error on both
		`{"id":"u4","created_at":"x"}`, // bad time: an error on both
		`not json`,
		``,
	}
	for _, r := range replies {
		var want, got codecCase
		wantErr := json.Unmarshal([]byte(r), &want)
		gotErr := c.DecodeReply([]byte(r), &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("decode %s: encoding/json error %v, Client error %v", r, wantErr, gotErr)
			continue
		}
		if wantErr == nil && !reflect.DeepEqual(want, got) {
			t.Errorf("decode %s:\n encoding/json %+v\n Client        %+v", r, want, got)
		}
	}

	deleted := time.Date(2026, 12, 4, 10, 0, 0, 0, time.FixedZone("", 3600))
	requests := []any{
		codecCase{ID: "<html> & \u2028", Count: 3, Created: time.Date(2026, 12, 4, 10, 0, 0, 1, time.UTC), Deleted: &deleted,
			Attrs: map[string]string{"b": "2", "a": "1"}, Any: []any{1.5, "x", nil}, Raw: json.RawMessage(`{ "spaced" : 1 }`)},
		codecCase{}, // nil slice and map: null
		map[string]any{"z": 1, "a": []byte("bytes"), "m": map[int]bool{2: true, 1: false}},
		struct{}{},
	}
	for _, r := range requests {
		want, wantErr := json.Marshal(r)
		got, gotErr := c.EncodeRequest(r)
		if wantErr != nil || gotErr != nil || !bytes.Equal(want, got) {
			t.Errorf("encode %#v:\n encoding/json %s (%v)\n Client        %s (%v)", r, want, wantErr, got, gotErr)
		}
	}
}
