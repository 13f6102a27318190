package authz

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// randomID returns n random bytes, base64url-encoded. Identifiers and credentials we generate come
// from here: 16 bytes (128 bits) for public IDs, 32 bytes for credentials.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is how we store server-generated, high-entropy credentials (client secrets, auth_req_ids,
// refresh tokens, enrollment codes): one SHA-256, because a slow hash on every poll would cost far
// more CPU than it protects (the value already has 256 bits of entropy).
func hashSecret(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// HashClientSecret returns the stored form of a client secret.
func HashClientSecret(secret string) []byte { return hashSecret(secret) }

// equalHash compares two hashes in constant time.
func equalHash(a, b []byte) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}

// userCodeIterations is the PBKDF2-HMAC-SHA256 work factor for user codes, which people choose and
// which may be short: OWASP's 2023 recommendation. A check costs a few hundred milliseconds of CPU,
// paid only by requests for users who set a user code.
const userCodeIterations = 600_000

// HashUserCode returns the stored form of a user_code: "pbkdf2-sha256$<iterations>$<salt>$<key>".
func HashUserCode(code string) (string, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, code, salt, userCodeIterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", userCodeIterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkUserCode reports whether code matches a HashUserCode value.
func checkUserCode(stored, code string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, code, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}
