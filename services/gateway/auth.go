package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthenticated is wrapped by every authentication failure; the
// gateway answers it 401.
var ErrUnauthenticated = errors.New("unauthenticated")

// Auth authenticates callers, with API keys or with bearer JWTs. A nil
// *Auth lets every caller in.
type Auth struct {
	kind string              // "api-key" or "jwt"
	keys map[[32]byte]string // sha256(key) -> name
	jwt  *jwtAuth
}

// MinAPIKeyLength is the shortest API key accepted: 16 bytes leave no
// room for guessing.
const MinAPIKeyLength = 16

var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// NewAPIKeyAuth lets in callers presenting one of keys (name -> key) in
// the X-API-Key header or as Authorization: Bearer <key>. The name, never
// the key, identifies the caller in logs and rate limits.
func NewAPIKeyAuth(keys map[string]string) (*Auth, error) {
	if len(keys) == 0 {
		return nil, errors.New("api keys: none given")
	}
	a := &Auth{kind: "api-key", keys: make(map[[32]byte]string, len(keys))}
	for name, key := range keys {
		if !keyNamePattern.MatchString(name) {
			return nil, fmt.Errorf("api key name %q: want 1 to 64 letters, digits, - or _", name)
		}
		if len(key) < MinAPIKeyLength {
			return nil, fmt.Errorf("api key %q: want at least %d characters", name, MinAPIKeyLength)
		}
		sum := sha256.Sum256([]byte(key))
		if other, dup := a.keys[sum]; dup {
			return nil, fmt.Errorf("api keys %q and %q are the same key", other, name)
		}
		a.keys[sum] = name
	}
	return a, nil
}

// JWTOptions configures bearer JWT authentication. Exactly one of Secret
// and PublicKeyPEM is set.
type JWTOptions struct {
	// Secret verifies HS256, HS384 and HS512 tokens.
	Secret []byte
	// PublicKeyPEM is a PEM "PUBLIC KEY" (or "CERTIFICATE"): an RSA key
	// verifies RS* and PS* tokens, an ECDSA key ES*, an Ed25519 key
	// EdDSA.
	PublicKeyPEM []byte
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string
	Audience string
	// Leeway is the clock skew allowed on exp and nbf (default 30s).
	Leeway time.Duration
}

type jwtAuth struct {
	key     any
	parser  *jwt.Parser
	methods []string
}

// NewJWTAuth lets in callers presenting a valid signed JWT as
// Authorization: Bearer <token>. The token must have exp and sub claims;
// sub identifies the caller.
func NewJWTAuth(o JWTOptions) (*Auth, error) {
	j := &jwtAuth{}
	switch {
	case len(o.Secret) > 0 && len(o.PublicKeyPEM) > 0:
		return nil, errors.New("jwt: give a secret or a public key, not both")
	case len(o.Secret) > 0:
		if len(o.Secret) < 32 {
			return nil, errors.New("jwt: the secret must be at least 32 bytes (HS256 keys are 256 bits)")
		}
		j.key, j.methods = o.Secret, []string{"HS256", "HS384", "HS512"}
	case len(o.PublicKeyPEM) > 0:
		key, err := parsePublicKey(o.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		j.key = key
		switch key.(type) {
		case *rsa.PublicKey:
			j.methods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
		case *ecdsa.PublicKey:
			j.methods = []string{"ES256", "ES384", "ES512"}
		case ed25519.PublicKey:
			j.methods = []string{"EdDSA"}
		default:
			return nil, fmt.Errorf("jwt: public key of type %T: want RSA, ECDSA or Ed25519", key)
		}
	default:
		return nil, errors.New("jwt: give a secret or a public key")
	}
	leeway := o.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(j.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return &Auth{kind: "jwt", jwt: j}, nil
}

func parsePublicKey(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("public key: no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("public key: PEM block %q: want PUBLIC KEY or CERTIFICATE", block.Type)
}

// authenticate returns the caller's identity, e.g. "key:mobile" or
// "jwt:user-42"; an error wraps ErrUnauthenticated.
func (a *Auth) authenticate(r *http.Request) (string, error) {
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	bearer = strings.TrimSpace(bearer)
	switch a.kind {
	case "api-key":
		key := r.Header.Get(HeaderAPIKey)
		if key == "" && hasBearer {
			key = bearer
		}
		if key == "" {
			return "", fmt.Errorf("%w: no API key: send it in the %s header or as Authorization: Bearer", ErrUnauthenticated, HeaderAPIKey)
		}
		// A map lookup on the hash: the time it takes says nothing
		// about how close a guess came.
		name, ok := a.keys[sha256.Sum256([]byte(key))]
		if !ok {
			return "", fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
		}
		return "key:" + name, nil
	default:
		if !hasBearer || bearer == "" {
			return "", fmt.Errorf("%w: no bearer token: send Authorization: Bearer <JWT>", ErrUnauthenticated)
		}
		tok, err := a.jwt.parser.Parse(bearer, func(*jwt.Token) (any, error) { return a.jwt.key, nil })
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		sub, err := tok.Claims.GetSubject()
		if err != nil || sub == "" {
			return "", fmt.Errorf("%w: token has no sub claim", ErrUnauthenticated)
		}
		return "jwt:" + sub, nil
	}
}

// scheme is the OpenAPI security scheme of a.
func (a *Auth) scheme() (string, map[string]any) {
	if a.kind == "api-key" {
		return "apiKey", map[string]any{"type": "apiKey", "in": "header", "name": HeaderAPIKey,
			"description": "An API key; Authorization: Bearer <key> works too."}
	}
	return "bearerJWT", map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
}
