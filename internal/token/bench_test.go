package token

import (
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// benchClaims is the size and shape of an RFC 9068 access token with one authorization detail.
type benchClaims struct {
	Iss      string           `json:"iss"`
	Sub      string           `json:"sub"`
	Aud      []string         `json:"aud"`
	Exp      int64            `json:"exp"`
	Iat      int64            `json:"iat"`
	Jti      string           `json:"jti"`
	ClientID string           `json:"client_id"`
	Scope    string           `json:"scope"`
	Details  []map[string]any `json:"authorization_details"`
}

func newBenchKeyring(b *testing.B) *Keyring {
	b.Helper()
	kr := NewKeyring(&memKeys{}, domain.SystemClock{}, Options{Algorithms: []string{ES256, RS256}, Generate: testGenerate})
	if err := kr.Init(b.Context()); err != nil {
		b.Fatal(err)
	}
	return kr
}

func benchToken() benchClaims {
	now := time.Now()
	return benchClaims{
		Iss: "https://countersign.example", Sub: "alice", Aud: []string{"https://tradepro.example"},
		Exp: now.Add(5 * time.Minute).Unix(), Iat: now.Unix(), Jti: RandomToken(16), ClientID: "agent",
		Scope: "openid trade",
		Details: []map[string]any{{
			"type": "trade_order", "action": "buy", "instrument": "ACME", "quantity": 10, "limit_price": "123.45",
		}},
	}
}

func benchmarkSign(b *testing.B, alg string) {
	kr := newBenchKeyring(b)
	claims := benchToken()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := kr.Sign(b.Context(), alg, "at+jwt", claims); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSignES256(b *testing.B) { benchmarkSign(b, ES256) }

func BenchmarkSignRS256(b *testing.B) { benchmarkSign(b, RS256) }

func BenchmarkVerifyES256(b *testing.B) {
	kr := newBenchKeyring(b)
	tok, err := kr.Sign(b.Context(), ES256, "at+jwt", benchToken())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := kr.Verify(b.Context(), tok, "at+jwt"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
