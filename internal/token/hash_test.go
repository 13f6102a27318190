package token

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func TestHashForIDToken_OpenIDConnectCoreExamples(t *testing.T) {
	t.Parallel()
	// OpenID Connect Core 1.0, appendix A.3 (at_hash) and A.4 (c_hash), both RS256.
	tests := []struct {
		name, value, want string
	}{
		{"at_hash", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "77QmUPtjPfzWtF2AnpK9RQ"},
		{"c_hash", "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk", "LDktKdoQak3Pk0cnXxCltA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum := sha256.Sum256([]byte(tt.value))
			independent := base64.RawURLEncoding.EncodeToString(sum[:16])
			if independent != tt.want {
				t.Fatalf("the test's own computation gives %s, the spec says %s", independent, tt.want)
			}
			for _, alg := range []string{"RS256", "ES256", "PS256"} {
				got, err := HashForIDToken(alg, tt.value)
				if err != nil || got != tt.want {
					t.Errorf("HashForIDToken(%s) = %q, %v; want %q", alg, got, err, tt.want)
				}
			}
		})
	}
}

func TestHashForIDToken_UsesTheHashOfTheAlgorithm(t *testing.T) {
	t.Parallel()
	for alg, n := range map[string]int{"ES384": 24, "PS512": 32, "EdDSA": 32} {
		got, err := HashForIDToken(alg, "x")
		if err != nil {
			t.Fatal(err)
		}
		if raw, _ := base64.RawURLEncoding.DecodeString(got); len(raw) != n {
			t.Errorf("%s: %d bytes, want %d", alg, len(raw), n)
		}
	}
	for _, alg := range []string{"none", "", "es256", "XS256"} {
		if _, err := HashForIDToken(alg, "x"); err == nil {
			t.Errorf("HashForIDToken(%q): no error", alg)
		}
	}
}

func TestRandomToken_IsRandomBase64URL(t *testing.T) {
	t.Parallel()
	a, b := RandomToken(32), RandomToken(32)
	if a == b {
		t.Error("two random tokens are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Errorf("RandomToken(32) = %q: %d bytes, %v", a, len(raw), err)
	}
}

func TestSHA256_MatchesKnownDigest(t *testing.T) {
	t.Parallel()
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // FIPS 180-2 example
	if got := hex.EncodeToString(SHA256("abc")); got != abc {
		t.Errorf("SHA256(abc) = %s", got)
	}
}
