package gateway_test

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/services/gateway"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	auth, err := gateway.NewAPIKeyAuth(map[string]string{"mobile": "mobile-key-0123456789", "partner": "partner-key-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	_, hs := w.gateway(gateway.Options{Auth: auth})
	url := hs.URL + "/v1/things/t1"

	for _, tt := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no key", nil, 401},
		{"an unknown key", []string{gateway.HeaderAPIKey, "not-a-key-0123456789"}, 401},
		{"X-API-Key", []string{gateway.HeaderAPIKey, "mobile-key-0123456789"}, 200},
		{"Authorization: Bearer", []string{"Authorization", "Bearer partner-key-0123456789"}, 200},
		{"another scheme", []string{"Authorization", "Basic bW9iaWxlOmtleQ=="}, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "GET", url, "", tt.header...)
			if tt.want == 200 {
				var th Thing
				r.want200(t, &th)
				return
			}
			r.problem(t, 401)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	t.Run("routes need a key, the docs do not", func(t *testing.T) {
		do(t, "GET", hs.URL+"/routes", "").problem(t, 401)
		for _, path := range []string{"/openapi.json", "/docs/", "/healthz", "/readyz"} {
			if r := do(t, "GET", hs.URL+path, ""); r.StatusCode != 200 {
				t.Errorf("GET %s without a key: %d", path, r.StatusCode)
			}
		}
	})

	for _, bad := range []map[string]string{
		nil,
		{"short": "tooshort"},
		{"bad name": "0123456789abcdef"},
		{"a": "0123456789abcdef", "b": "0123456789abcdef"},
	} {
		if _, err := gateway.NewAPIKeyAuth(bad); err == nil {
			t.Errorf("NewAPIKeyAuth(%v) accepted", bad)
		}
	}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	secret := []byte("0123456789abcdef0123456789abcdef")
	hsAuth, err := gateway.NewJWTAuth(gateway.JWTOptions{Secret: secret, Issuer: "https://issuer.example", Audience: "switchboard"})
	if err != nil {
		t.Fatal(err)
	}
	_, hs := w.gateway(gateway.Options{Auth: hsAuth})

	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "user-42", "iss": "https://issuer.example", "aud": "switchboard", "exp": time.Now().Add(time.Minute).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tt := range []struct {
		name  string
		token string
		want  int
	}{
		{"a valid token", sign(jwt.SigningMethodHS256, secret, good()), 200},
		{"HS512", sign(jwt.SigningMethodHS512, secret, good()), 200},
		{"expired", sign(jwt.SigningMethodHS256, secret, with("exp", time.Now().Add(-time.Hour).Unix())), 401},
		{"no exp", sign(jwt.SigningMethodHS256, secret, with("exp", nil)), 401},
		{"no sub", sign(jwt.SigningMethodHS256, secret, with("sub", nil)), 401},
		{"another issuer", sign(jwt.SigningMethodHS256, secret, with("iss", "https://evil.example")), 401},
		{"another audience", sign(jwt.SigningMethodHS256, secret, with("aud", "other")), 401},
		{"another secret", sign(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), good()), 401},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), 401},
		{"garbage", "not.a.jwt", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "GET", hs.URL+"/v1/things/t1", "", "Authorization", "Bearer "+tt.token)
			if tt.want == 200 {
				var th Thing
				r.want200(t, &th)
				return
			}
			r.problem(t, 401)
		})
	}

	t.Run("ES256 with a public key", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		auth, err := gateway.NewJWTAuth(gateway.JWTOptions{PublicKeyPEM: pemKey})
		if err != nil {
			t.Fatal(err)
		}
		_, hs := w.gateway(gateway.Options{Auth: auth})
		var th Thing
		do(t, "GET", hs.URL+"/v1/things/t1", "", "Authorization", "Bearer "+sign(jwt.SigningMethodES256, key, good())).want200(t, &th)
		// An HMAC token made with the public key as the secret: the
		// classic algorithm confusion, refused.
		do(t, "GET", hs.URL+"/v1/things/t1", "", "Authorization", "Bearer "+sign(jwt.SigningMethodHS256, pemKey, good())).problem(t, 401)
	})

	for _, bad := range []gateway.JWTOptions{
		{},
		{Secret: []byte("short")},
		{Secret: secret, PublicKeyPEM: []byte("x")},
		{PublicKeyPEM: []byte("not pem")},
	} {
		if _, err := gateway.NewJWTAuth(bad); err == nil {
			t.Errorf("NewJWTAuth(%+v) accepted", bad)
		}
	}
}

// Each caller has a bucket of its own; an empty one is a 429 that says
// when to retry.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	auth, err := gateway.NewAPIKeyAuth(map[string]string{"a": "key-a-0123456789ab", "b": "key-b-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	_, hs := w.gateway(gateway.Options{Auth: auth, RateLimit: 0.5, RateBurst: 2})
	get := func(key string) response {
		return do(t, "GET", hs.URL+"/v1/things/t1", "", gateway.HeaderAPIKey, key)
	}
	var th Thing
	get("key-a-0123456789ab").want200(t, &th)
	get("key-a-0123456789ab").want200(t, &th)
	r := get("key-a-0123456789ab")
	p := r.problem(t, 429)
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds (0.5 requests/s)", r.Header.Get("Retry-After"))
	}
	if !strings.Contains(p.Detail, "rate limit") {
		t.Errorf("detail %q", p.Detail)
	}
	get("key-b-0123456789ab").want200(t, &th) // b's bucket is full

	// Without auth, callers are told apart by address.
	_, open := w.gateway(gateway.Options{RateLimit: 0.5, RateBurst: 1})
	do(t, "GET", open.URL+"/v1/things/t1", "").want200(t, &th)
	do(t, "GET", open.URL+"/v1/things/t1", "").problem(t, 429)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{MaxBody: 64})
	p := do(t, "POST", hs.URL+"/v1/echo", `{"pad":"`+strings.Repeat("x", 100)+`"}`).problem(t, 413)
	if !strings.Contains(p.Detail, "64 bytes") {
		t.Errorf("detail %q, want the gateway's limit", p.Detail)
	}
	// Streamed, without a Content-Length, it is cut off all the same.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"pad":"` + strings.Repeat("x", 100) + `"}`))
		_ = pw.Close()
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/v1/echo", pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked body over the limit: %d, want 413", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	_, hs := w.gateway(gateway.Options{CORSOrigins: []string{"https://app.example"}})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "OPTIONS", hs.URL+"/v1/things", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, idempotency-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := preflight("https://app.example")
	if ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "idempotency-key") {
		t.Errorf("allowed origin's preflight: %d %v", ok.StatusCode, ok.Header)
	}
	if other := preflight("https://evil.example"); other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin got Access-Control-Allow-Origin %q", other.Header.Get("Access-Control-Allow-Origin"))
	}
	r := do(t, "GET", hs.URL+"/v1/things/t1", "", "Origin", "https://app.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Switchboard-Request-Id") {
		t.Errorf("simple request: %v", r.Header)
	}
	if _, err := gateway.New(t.Context(), w.conn("bad"), gateway.Options{CORSOrigins: []string{"app.example"}}); !errors.Is(err, gateway.ErrInvalidOption) {
		t.Errorf("an origin without a scheme: %v", err)
	}
}

func TestDocsPage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, hs := w.gateway(gateway.Options{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(hs.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/docs/" {
		t.Errorf("GET /docs: %d to %q, want a redirect to /docs/", resp.StatusCode, resp.Header.Get("Location"))
	}
	page := do(t, "GET", hs.URL+"/docs/", "")
	if page.StatusCode != 200 || !strings.Contains(string(page.body), "swagger-ui-bundle.js") || page.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("GET /docs/: %d %v\n%s", page.StatusCode, page.Header, page.body)
	}
	// Compressed for browsers that take it; the same bytes either way.
	plain := do(t, "GET", hs.URL+"/docs/swagger-ui/swagger-ui-bundle.js", "", "Accept-Encoding", "identity")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", hs.URL+"/docs/swagger-ui/swagger-ui-bundle.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	zresp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer zresp.Body.Close()
	if zresp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", zresp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(zresp.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.body) < 1<<20 || string(unzipped) != string(plain.body) || !strings.HasPrefix(plain.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("bundle: %d bytes plain (%s), %d unzipped", len(plain.body), plain.Header.Get("Content-Type"), len(unzipped))
	}
	if r := do(t, "GET", hs.URL+"/docs/swagger-ui/swagger-ui-bundle.js", "", "If-None-Match", plain.Header.Get("ETag")); r.StatusCode != 304 {
		t.Errorf("revalidation: %d, want 304", r.StatusCode)
	}
	do(t, "GET", hs.URL+"/docs/nosuch.js", "").problem(t, 404)
}

// Stop waits for the requests in flight, and refuses new connections
// meanwhile.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	release := make(chan struct{})
	w.startThings("1.0.0", release)
	s, err := gateway.Start(t.Context(), w.conn("gateway"), "127.0.0.1:0", gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if err := s.Ready(t.Context()); err != nil || s.Err() != nil || s.Name() != "gateway" {
		t.Fatalf("Ready %v, Err %v, Name %q", err, s.Err(), s.Name())
	}

	inflight := make(chan response, 1)
	go func() {
		resp, err := http.Post(s.URL()+"/v1/slow", "application/json", nil)
		if err != nil {
			inflight <- response{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		inflight <- response{Response: resp, body: body}
	}()
	// The slow request has reached the service once its stats say so.
	eventually(t, func() error {
		for _, ep := range w.statsOf(t, "things") {
			if ep.Name == "slow" && ep.NumRequests == 1 {
				return nil
			}
		}
		return errors.New("the slow request has not arrived")
	})

	var stopErr error
	var stopped sync.WaitGroup
	stopped.Go(func() { stopErr = s.Stop(context.Background()) })
	eventually(t, func() error {
		if _, err := http.Get(s.URL() + "/healthz"); err == nil {
			return errors.New("a new connection was accepted during Stop")
		}
		return nil
	})
	close(release)
	stopped.Wait()
	r := <-inflight
	if stopErr != nil || r.Response == nil || r.StatusCode != 200 {
		t.Errorf("Stop: %v; the request in flight: %+v", stopErr, r.Response)
	}
	if s.Err() == nil {
		t.Error("Err is nil after Stop")
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startThings("1.0.0", nil)
	nc := embeddedtest.Connect(t, w.srv, "gateway")
	g, err := gateway.New(t.Context(), nc, gateway.Options{Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	routes := len(g.Routes().Routes)
	nc.Close()
	if err := g.Ready(); err == nil || !strings.Contains(err.Error(), "nats") {
		t.Errorf("Ready with NATS closed: %v", err)
	}
	// Refreshes fail now; the routes known stay.
	eventually(t, func() error {
		if err := g.Ready(); err == nil || !strings.Contains(err.Error(), "nats") {
			return fmt.Errorf("Ready = %v", err)
		}
		return nil
	})
	if n := len(g.Routes().Routes); n != routes || n == 0 {
		t.Errorf("%d routes after NATS went, want the %d known", n, routes)
	}
}
