package wire_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/devloop/switchboard/wire"
)

// codecCaller echoes the request and counts how often its codec is used,
// so the test can tell that Call chose it over encoding/json.
type codecCaller struct{ encodes, decodes int }

func (c *codecCaller) Call(_ context.Context, _ string, data []byte, _ ...wire.CallOption) (*wire.Reply, error) {
	return &wire.Reply{Data: data}, nil
}

func (c *codecCaller) EncodeRequest(v any) ([]byte, error) {
	c.encodes++
	return json.Marshal(v)
}

func (c *codecCaller) DecodeReply(data []byte, v any) error {
	c.decodes++
	return json.Unmarshal(data, v)
}

type named struct {
	Name string `json:"name"`
}

func TestCallUsesTheCallersCodec(t *testing.T) {
	c := &codecCaller{}
	resp, err := wire.Call[named, named](t.Context(), c, "x.echo", named{Name: "Ada"})
	if err != nil || resp.Name != "Ada" {
		t.Fatalf("Call = %+v, %v; want Ada, nil", resp, err)
	}
	if c.encodes != 1 || c.decodes != 1 {
		t.Fatalf("codec used %d/%d times (encode/decode); want 1/1", c.encodes, c.decodes)
	}
}

// rawCaller answers every call with the same bytes.
type rawCaller string

func (r rawCaller) Call(context.Context, string, []byte, ...wire.CallOption) (*wire.Reply, error) {
	return &wire.Reply{Data: []byte(r)}, nil
}

// Without a Codec, Call decodes with encoding/json: leniently (unknown
// fields ignored), and a reply that is not the type is an error naming
// the subject.
func TestCallWithoutCodecIsEncodingJSON(t *testing.T) {
	resp, err := wire.Call[named, named](t.Context(), rawCaller(`{"name":"Ada","added":1}`), "x.get", named{})
	if err != nil || resp.Name != "Ada" {
		t.Fatalf("Call = %+v, %v; want Ada, nil", resp, err)
	}
	_, err = wire.Call[named, named](t.Context(), rawCaller(`{"name":1}`), "x.get", named{})
	if err == nil || !strings.Contains(err.Error(), "call x.get: decode reply") {
		t.Fatalf("Call of a wrong reply = %v; want a decode error naming x.get", err)
	}
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Fatalf("error %v does not wrap encoding/json's *UnmarshalTypeError", err)
	}
}
