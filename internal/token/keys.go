package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// Supported signing algorithms.
const (
	ES256 = "ES256"
	RS256 = "RS256"
	PS256 = "PS256"
)

// useSig is the domain.SigningKey Use of token signing keys.
const useSig = "sig"

// minRSABits is the smallest RSA modulus we sign or verify with.
const minRSABits = 2048

// supported reports whether the keyring can keep keys for alg.
func supported(alg string) bool {
	switch alg {
	case ES256, RS256, PS256:
		return true
	}
	return false
}

// generateKey makes a new private key for alg: ECDSA P-256 for ES256, RSA 2048 for RS256 and PS256.
// It is the default of [Options.Generate].
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256, PS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
}

// checkKeyFits reports an error unless key is the kind of key alg signs with.
func checkKeyFits(alg string, key crypto.Signer) error {
	switch alg {
	case ES256:
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok || k.Curve != elliptic.P256() {
			return fmt.Errorf("token: %s needs an ECDSA P-256 key, got %T", alg, key)
		}
		return nil
	case RS256, PS256:
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("token: %s needs an RSA key, got %T", alg, key)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("token: %s needs an RSA key of at least %d bits, got %d", alg, minRSABits, k.N.BitLen())
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
}

// newKeyID returns a random key ID of 128 bits, base64url encoded.
func newKeyID() string { return RandomToken(16) }

// material is the parsed, immutable part of one key: what never changes for a given key ID.
type material struct {
	kid    string
	alg    jose.SignatureAlgorithm
	priv   crypto.Signer
	public crypto.PublicKey
	// jwk is the public JWK as published (kid, alg, use "sig").
	jwk jose.JSONWebKey

	// signers caches one jose.Signer per typ header value (string -> jose.Signer).
	signers sync.Map
}

// parseMaterial parses the PKCS #8 DER of a stored key and checks that it fits alg.
func parseMaterial(kid, alg string, der []byte) (*material, error) {
	if kid == "" {
		return nil, fmt.Errorf("token: key with empty ID")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", kid, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("token: key %s: %T is not a signer", kid, parsed)
	}
	return newMaterial(kid, alg, priv)
}

// newMaterial wraps a private key, checking that it fits alg.
func newMaterial(kid, alg string, priv crypto.Signer) (*material, error) {
	if err := checkKeyFits(alg, priv); err != nil {
		return nil, fmt.Errorf("token: key %s: %w", kid, err)
	}
	pub := priv.Public()
	return &material{
		kid:    kid,
		alg:    jose.SignatureAlgorithm(alg),
		priv:   priv,
		public: pub,
		jwk:    jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: useSig},
	}, nil
}

// signer returns the cached jose.Signer that signs with this key and sets typ (when not empty).
func (m *material) signer(typ string) (jose.Signer, error) {
	if s, ok := m.signers.Load(typ); ok {
		return s.(jose.Signer), nil
	}
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: m.alg,
		Key:       jose.JSONWebKey{Key: m.priv, KeyID: m.kid},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", m.kid, err)
	}
	actual, _ := m.signers.LoadOrStore(typ, s)
	return actual.(jose.Signer), nil
}
