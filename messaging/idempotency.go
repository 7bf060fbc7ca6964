package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/devloop/switchboard/wire"
)

// IdempotencyKey returns the Idempotency-Key header of the request ctx
// belongs to ("" when absent), with a fingerprint of the request: a digest
// of its caller (see [Request.Caller]), subject and payload. A store that
// records the fingerprint with the key can tell a retry (same fingerprint:
// answer with the first result) from a reuse of the key for another
// request or by another caller (refuse, 422). A key longer than
// wire.MaxIdempotencyKey is a 400.
func IdempotencyKey(ctx context.Context) (key, fingerprint string, err error) {
	r, ok := RequestFromContext(ctx)
	if !ok {
		return "", "", nil
	}
	key = header(r.Header, wire.HeaderIdempotencyKey)
	if key == "" {
		return "", "", nil
	}
	if len(key) > wire.MaxIdempotencyKey {
		return "", "", wire.NewError(wire.CodeBadRequest, "invalid request",
			wire.Detail{Field: wire.HeaderIdempotencyKey, Message: fmt.Sprintf("must be at most %d bytes", wire.MaxIdempotencyKey)})
	}
	h := sha256.New()
	for _, part := range []string{r.Caller(), r.Subject} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(r.Data)
	return key, hex.EncodeToString(h.Sum(nil)[:16]), nil
}
