package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
)

// HashForIDToken computes an OpenID Connect ID token hash claim (at_hash, c_hash, and the like) of
// value for a token signed with alg: the base64url encoding, without padding, of the left half of
// the hash of the ASCII value, where the hash is the one used by alg (SHA-256 for ES256, RS256,
// PS256 and HS256; SHA-384 and SHA-512 for their 384 and 512 variants; SHA-512 for EdDSA, as the
// OpenID Connect errata specify for Ed25519). Other algorithms, "none" included, are an error.
func HashForIDToken(alg, value string) (string, error) {
	var h hash.Hash
	switch alg {
	case "ES256", "RS256", "PS256", "HS256":
		h = sha256.New()
	case "ES384", "RS384", "PS384", "HS384":
		h = sha512.New384()
	case "ES512", "RS512", "PS512", "HS512", "EdDSA":
		h = sha512.New()
	default:
		return "", fmt.Errorf("token: no ID token hash for algorithm %q", alg)
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

// RandomToken returns nbytes bytes from crypto/rand, base64url encoded without padding. Use at least
// 16 bytes (128 bits) for anything that must not be guessed.
func RandomToken(nbytes int) string {
	b := make([]byte, nbytes)
	rand.Read(b) // never returns an error; it crashes the program if the system has no randomness
	return base64.RawURLEncoding.EncodeToString(b)
}

// SHA256 returns the SHA-256 digest of s, the form in which the store keeps high-entropy secrets
// (refresh tokens, client secrets).
func SHA256(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
