package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/oauth"
	"github.com/countersign/countersign/resource"
)

// issuer is a stand-in authorization server that publishes an RSA and an ECDSA key and signs
// whatever a test asks, so that every algorithm and claim check can be exercised.
type issuer struct {
	srv   *httptest.Server
	url   string
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	pinRS *rsa.PrivateKey // published with alg RS256, to check the key's alg is enforced
}

var (
	rsaOnce sync.Once
	rsaKeys [2]*rsa.PrivateKey
)

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	rsaOnce.Do(func() {
		for i := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[i] = k
		}
	})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{rsa: rsaKeys[0], pinRS: rsaKeys[1], ec: ec}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(oauth.Metadata{Issuer: is.url, JWKSURI: is.url + ".well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &is.rsa.PublicKey, KeyID: "rsa", Use: "sig"},
			{Key: &is.pinRS.PublicKey, KeyID: "rsa-rs256", Use: "sig", Algorithm: "RS256"},
			{Key: &is.ec.PublicKey, KeyID: "ec", Use: "sig", Algorithm: "ES256"},
		}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.url = is.srv.URL + "/"
	return is
}

func (is *issuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": is.url, "sub": "alice", "aud": "https://api.example", "client_id": "agent", "jti": randomID(),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"authorization_details": []any{map[string]any{"type": "trade_order", "symbol": "NVDA", "side": "BUY", "quantity": 10}},
	}
}

func (is *issuer) sign(t *testing.T, alg jose.SignatureAlgorithm, kid, typ string, claims map[string]any) string {
	t.Helper()
	var key any = is.rsa
	switch {
	case alg == jose.ES256:
		key = is.ec
	case kid == "rsa-rs256":
		key = is.pinRS
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerify_AlgorithmsAndClaims(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	now := time.Now()
	v, err := resource.New(resource.Config{Issuer: is.url, Audience: "https://api.example", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, val any) map[string]any {
		c := is.claims(now)
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(mustMarshal(is.claims(now))) + "."
	hmac := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "rsa"))
		jws, _ := signer.Sign(mustMarshal(is.claims(now)))
		s, _ := jws.CompactSerialize()
		return s
	}()

	a := strings.Split(is.sign(t, jose.ES256, "ec", "at+jwt", is.claims(now)), ".")
	b := strings.Split(is.sign(t, jose.ES256, "ec", "at+jwt", with("sub", "mallory")), ".")
	spliced := b[0] + "." + b[1] + "." + a[2]

	for _, tc := range []struct {
		name  string
		token string
		want  string // "" for valid, else a piece of the error description
	}{
		{"ES256", is.sign(t, jose.ES256, "ec", "at+jwt", is.claims(now)), ""},
		{"RS256", is.sign(t, jose.RS256, "rsa", "at+jwt", is.claims(now)), ""},
		{"PS256", is.sign(t, jose.PS256, "rsa", "at+jwt", is.claims(now)), ""},
		{"TypWithApplicationPrefix", is.sign(t, jose.ES256, "ec", "application/at+jwt", is.claims(now)), ""},
		{"ArrayAudience", is.sign(t, jose.ES256, "ec", "at+jwt", with("aud", []string{"https://other.example", "https://api.example"})), ""},
		{"ExpiredWithinLeeway", is.sign(t, jose.ES256, "ec", "at+jwt", with("exp", now.Add(-10*time.Second).Unix())), ""},
		{"AlgNone", unsigned, "not a JWT signed"},
		{"HMAC", hmac, "not a JWT signed"},
		{"IDTokenTyp", is.sign(t, jose.ES256, "ec", "JWT", is.claims(now)), "typ"},
		{"NoTyp", is.sign(t, jose.ES256, "ec", "", is.claims(now)), "typ"},
		{"KeyPinnedToAnotherAlg", is.sign(t, jose.PS256, "rsa-rs256", "at+jwt", is.claims(now)), "RS256"},
		{"SignatureOfAnotherToken", spliced, "signature does not verify"},
		{"UnknownKid", is.sign(t, jose.ES256, "nope", "at+jwt", is.claims(now)), "unknown key"},
		{"WrongIssuer", is.sign(t, jose.ES256, "ec", "at+jwt", with("iss", "https://evil.example/")), "issued by"},
		{"WrongAudience", is.sign(t, jose.ES256, "ec", "at+jwt", with("aud", "https://other.example")), "not for this API"},
		{"Expired", is.sign(t, jose.ES256, "ec", "at+jwt", with("exp", now.Add(-time.Minute).Unix())), "expired"},
		{"NoExp", is.sign(t, jose.ES256, "ec", "at+jwt", with("exp", nil)), "no exp"},
		{"NotYetValid", is.sign(t, jose.ES256, "ec", "at+jwt", with("nbf", now.Add(time.Minute).Unix())), "not valid yet"},
		{"IssuedInTheFuture", is.sign(t, jose.ES256, "ec", "at+jwt", with("iat", now.Add(time.Minute).Unix())), "future"},
		{"DetailWithoutType", is.sign(t, jose.ES256, "ec", "at+jwt", with("authorization_details", []any{map[string]any{"symbol": "NVDA"}})), "no type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := v.Verify(context.Background(), tc.token)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if tok.Subject != "alice" || len(tok.Details) != 1 || tok.Details[0].Type != "trade_order" {
					t.Fatalf("claims %+v", tok)
				}
				return
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidToken || !strings.Contains(oe.Description, tc.want) {
				t.Fatalf("got %v, want invalid_token mentioning %q", err, tc.want)
			}
		})
	}
}

func TestVerify_IssuerUnreachableIsTemporary(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	tok := is.sign(t, jose.ES256, "ec", "at+jwt", is.claims(time.Now()))
	is.srv.Close()
	v, _ := resource.New(resource.Config{Issuer: is.url, Audience: "https://api.example"})
	_, err := v.Verify(context.Background(), tok)
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.ErrTemporarilyUnavailable {
		t.Fatalf("got %v, want temporarily_unavailable", err)
	}
	rec := httptest.NewRecorder()
	resource.WriteError(rec, err)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestRequire_NeedsTheMiddleware(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	_, err := resource.Require(r, "trade_order", func(TradeOrder) bool { return true })
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidToken {
		t.Fatalf("got %v", err)
	}
}

func TestMemoryReplayStore_OneWinner(t *testing.T) {
	t.Parallel()
	s := resource.NewMemoryReplayStore()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if first, _ := s.Use(context.Background(), "jti-1", time.Now().Add(time.Minute)); first {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d first uses, want 1", wins.Load())
	}
	// An entry whose time has passed is forgotten: such a token fails the exp check anyway.
	if first, _ := s.Use(context.Background(), "jti-2", time.Now().Add(-time.Second)); !first {
		t.Fatal("not first")
	}
	if first, _ := s.Use(context.Background(), "jti-2", time.Now().Add(time.Minute)); !first {
		t.Fatal("an expired entry still counts")
	}
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
