package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// signWith signs payload with key as alg, with the given protected header members, using go-jose:
// the way an attacker who does not have our keys would make a token.
func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, headers map[string]any, payload string) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forge signs payload with a fresh key of the attacker's, naming kid.
func forge(t *testing.T, alg, kid, payload string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signWith(t, jose.SignatureAlgorithm(alg), key, map[string]any{"kid": kid}, payload)
}

// unsigned builds a compact JWS with alg "none" by hand (go-jose rightly cannot make one).
func unsigned(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "."
}

// storedKey returns the private key of a stored key.
func (f *fixture) storedKey(t *testing.T, kid string) crypto.Signer {
	t.Helper()
	priv, err := x509.ParsePKCS8PrivateKey(f.store.get(t, kid).PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv.(crypto.Signer)
}

// publicPEM returns the PEM of the public key of a stored key, as a server would publish it.
func (f *fixture) publicPEM(t *testing.T, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(f.storedKey(t, kid).Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerify_Rejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	esKid, rsKid := f.activeKid(t, ES256), f.activeKid(t, RS256)
	claims := `{"iss":"https://cs.example","sub":"mallory","scope":"trade"}`
	valid := mustSign(t, f.kr, ES256, "at+jwt", json.RawMessage(`{"sub":"alice","scope":"read"}`))
	parts := strings.Split(valid, ".")
	jwk, err := json.Marshal(jose.JSONWebKey{Key: f.storedKey(t, rsKid).Public(), KeyID: rsKid, Algorithm: RS256, Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(parts[2])
	flipped[10] ^= 'A' ^ 'B'

	tests := []struct {
		name  string
		token string
		typ   []string
	}{
		{"alg none", unsigned(`{"alg":"none","kid":"`+esKid+`","typ":"at+jwt"}`, claims), nil},
		{"alg none with a signature", unsigned(`{"alg":"none","kid":"`+esKid+`"}`, claims) + parts[2], nil},
		{"alg NONE", unsigned(`{"alg":"NONE","kid":"`+esKid+`"}`, claims), nil},
		{"HS256 keyed with the EC public key PEM", signWith(t, jose.HS256, f.publicPEM(t, esKid), map[string]any{"kid": esKid}, claims), nil},
		{"HS256 keyed with the RSA public key PEM", signWith(t, jose.HS256, f.publicPEM(t, rsKid), map[string]any{"kid": rsKid}, claims), nil},
		{"HS256 keyed with the published JWK", signWith(t, jose.HS256, jwk, map[string]any{"kid": rsKid}, claims), nil},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + parts[2], nil},
		{"tampered header", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"`+esKid+`","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], nil},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped), nil},
		{"signature stripped", parts[0] + "." + parts[1] + ".", nil},
		{"unknown kid", forge(t, ES256, "no-such-key", claims), nil},
		{"attacker key naming our kid", forge(t, ES256, esKid, claims), nil},
		{"no kid", signWith(t, jose.ES256, f.storedKey(t, esKid), nil, claims), nil},
		{"alg confusion: PS256 signature by the RS256 key", signWith(t, jose.PS256, f.storedKey(t, rsKid), map[string]any{"kid": rsKid}, claims), nil},
		{"alg confusion: RS256 signature naming the ES256 kid", signWith(t, jose.RS256, f.storedKey(t, rsKid), map[string]any{"kid": esKid}, claims), nil},
		{"unsupported alg ES384", signWith(t, jose.ES384, mustP384(t), map[string]any{"kid": esKid}, claims), nil},
		{"crit header", signWith(t, jose.ES256, f.storedKey(t, esKid), map[string]any{"kid": esKid, "crit": []string{"exp"}, "exp": 1}, claims), nil},
		{"wrong typ", valid, []string{"JWT"}},
		{"typ required but absent", signWith(t, jose.ES256, f.storedKey(t, esKid), map[string]any{"kid": esKid}, claims), []string{"at+jwt"}},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, nil},
		{"two parts", parts[0] + "." + parts[1], nil},
		{"empty", "", nil},
		{"garbage", "not a token", nil},
		{"too large", parts[0] + "." + strings.Repeat("A", maxTokenBytes) + "." + parts[2], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			payload, err := f.kr.Verify(t.Context(), tt.token, tt.typ...)
			t.Log(err)
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify = %q, %v; want ErrInvalidToken", payload, err)
			}
			if payload != nil {
				t.Errorf("Verify returned a payload with the error: %s", payload)
			}
		})
	}

	// The checks above are not vacuous: the same keys and headers do verify when used honestly.
	honest := signWith(t, jose.RS256, f.storedKey(t, rsKid), map[string]any{"kid": rsKid, "typ": "at+jwt"}, claims)
	if _, err := f.kr.Verify(t.Context(), honest, "at+jwt"); err != nil {
		t.Errorf("honest RS256 token: %v", err)
	}
	if _, err := f.kr.Verify(t.Context(), valid, "at+jwt"); err != nil {
		t.Errorf("untampered token: %v", err)
	}
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
