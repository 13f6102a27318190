package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"time"
)

// assertionLifetime is how long a client assertion is valid: long enough for clock skew, short
// enough that the server remembers its jti only briefly.
const assertionLifetime = time.Minute

// signingAlg picks the JWS algorithm for a key. The JWS is built here with the standard library
// rather than a JOSE library so that any crypto.Signer works, including keys held in an HSM or KMS.
func signingAlg(key crypto.Signer, want string) (string, error) {
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("client: only P-256 ECDSA keys are supported (ES256)")
		}
		if want != "" && want != "ES256" {
			return "", fmt.Errorf("client: an ECDSA P-256 key signs ES256, not %s", want)
		}
		return "ES256", nil
	case *rsa.PublicKey:
		switch want {
		case "":
			return "RS256", nil
		case "RS256", "PS256":
			return want, nil
		}
		return "", fmt.Errorf("client: an RSA key signs RS256 or PS256, not %s", want)
	case ed25519.PublicKey:
		if want != "" && want != "EdDSA" {
			return "", fmt.Errorf("client: an Ed25519 key signs EdDSA, not %s", want)
		}
		return "EdDSA", nil
	}
	return "", fmt.Errorf("client: unsupported private key type %T", key.Public())
}

// assertion returns a fresh RFC 7523 client assertion: iss = sub = client_id, aud = the issuer.
func (c *Client) assertion() (string, error) {
	now := c.now()
	return signJWT(c.cfg.PrivateKey, c.cfg.SigningAlg, c.cfg.KeyID, map[string]any{
		"iss": c.cfg.ClientID,
		"sub": c.cfg.ClientID,
		"aud": c.cfg.Issuer,
		"jti": randomToken(16),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
}

// signJWT returns a compact JWS of claims.
func signJWT(key crypto.Signer, alg, kid string, claims any) (string, error) {
	header := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch alg {
	case "ES256":
		der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return "", err
		}
		// crypto.Signer gives ASN.1 DER; JWS wants r and s as fixed-size big-endian (RFC 7518 3.4).
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			return "", fmt.Errorf("client: ECDSA signature: %w", err)
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	case "RS256":
		if sig, err = key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			return "", err
		}
	case "PS256":
		if sig, err = key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}); err != nil {
			return "", err
		}
	case "EdDSA":
		if sig, err = key.Sign(rand.Reader, []byte(input), crypto.Hash(0)); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("client: unsupported signing algorithm %q", alg)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
