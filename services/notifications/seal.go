package notifications

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the size of the key that encrypts webhook secrets at rest.
const KeySize = 32

// ErrNoKey is Start without an encryption key.
var ErrNoKey = errors.New("notifications: webhook secrets are encrypted at rest: set webhook-encryption-key (32 random bytes, base64)")

// sealer encrypts webhook secrets for the bucket with AES-256-GCM, bound
// to their webhook's id (the additional data), so that reading the bucket
// does not reveal them and a sealed secret moved to another webhook does
// not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("notifications: encryption key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns base64(nonce | ciphertext) of plain, for webhook id.
func (s *sealer) seal(id, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), []byte(id))), nil
}

// open reverses seal; the error never holds the secret.
func (s *sealer) open(id, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	data, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(data) < s.aead.NonceSize() {
		return "", errors.New("sealed secret is malformed")
	}
	plain, err := s.aead.Open(nil, data[:s.aead.NonceSize()], data[s.aead.NonceSize():], []byte(id))
	if err != nil {
		return "", errors.New("sealed secret does not open with this key (was webhook-encryption-key changed?)")
	}
	return string(plain), nil
}
