package storetest

import (
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// mustGetToken reads a token record or stops the test.
func mustGetToken(t *testing.T, s domain.Store, id string) domain.Token {
	t.Helper()
	tok, err := s.GetToken(t.Context(), id)
	ok(t, "GetToken "+id, err)
	return tok
}

var tokenTests = []test{
	{"Token/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		refresh := usedRefreshToken("rt-1", "family-1", at(0))
		access := accessToken("at-1", at(0))
		for _, tok := range []domain.Token{refresh, access} {
			ok(t, "CreateToken "+tok.ID, s.CreateToken(ctx, tok))
			same(t, "token "+tok.ID, tok, mustGetToken(t, s, tok.ID))
		}
		got, err := s.GetTokenByHash(ctx, refresh.Hash)
		ok(t, "GetTokenByHash", err)
		same(t, "token found by hash", refresh, got)
	}},
	{"Token/CreateDuplicate", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		rt := refreshToken("rt", "family", at(0))
		ok(t, "CreateToken", s.CreateToken(ctx, rt))
		sameID := refreshToken("rt", "other", at(time.Hour))
		isErr(t, "CreateToken with an existing ID", s.CreateToken(ctx, sameID), domain.ErrAlreadyExists)
		sameHash := refreshToken("rt-2", "other", at(time.Hour))
		sameHash.Hash = rt.Hash
		isErr(t, "CreateToken with an existing hash", s.CreateToken(ctx, sameHash), domain.ErrAlreadyExists)
		same(t, "token after duplicate creates", rt, mustGetToken(t, s, "rt"))
		// Access tokens have no hash, and many of them do not collide.
		ok(t, "CreateToken access 1", s.CreateToken(ctx, accessToken("at-1", at(0))))
		ok(t, "CreateToken access 2", s.CreateToken(ctx, accessToken("at-2", at(0))))
	}},
	{"Token/GetMissing", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "CreateToken access", s.CreateToken(ctx, accessToken("at", at(0))))
		_, err := s.GetToken(ctx, "nothing")
		isErr(t, "GetToken of a missing token", err, domain.ErrNotFound)
		_, err = s.GetTokenByHash(ctx, sha("nothing"))
		isErr(t, "GetTokenByHash of a missing hash", err, domain.ErrNotFound)
		_, err = s.GetTokenByHash(ctx, nil)
		isErr(t, "GetTokenByHash of no hash (must not find an access token)", err, domain.ErrNotFound)
	}},
	{"UpdateToken/Rotate", func(t *testing.T, s domain.Store) {
		rt := refreshToken("rt", "family", at(0))
		ok(t, "CreateToken", s.CreateToken(t.Context(), rt))
		got, err := s.UpdateToken(t.Context(), "rt", func(tok *domain.Token) error {
			tok.UsedAt = at(time.Hour)
			return nil
		})
		ok(t, "UpdateToken", err)
		want := rt
		want.UsedAt = at(time.Hour)
		same(t, "returned token", want, got)
		same(t, "stored token", want, mustGetToken(t, s, "rt"))
	}},
	{"UpdateToken/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		rt := refreshToken("rt", "family", at(0))
		ok(t, "CreateToken", s.CreateToken(t.Context(), rt))
		_, err := s.UpdateToken(t.Context(), "rt", func(tok *domain.Token) error {
			tok.UsedAt, tok.RevokedAt, tok.Scope = at(time.Hour), at(time.Hour), nil
			return errBoom
		})
		isErr(t, "UpdateToken whose function fails", err, errBoom)
		same(t, "token after a failed update", rt, mustGetToken(t, s, "rt"))
	}},
	{"UpdateToken/Missing", func(t *testing.T, s domain.Store) {
		called := false
		_, err := s.UpdateToken(t.Context(), "nothing", func(*domain.Token) error {
			called = true
			return nil
		})
		isErr(t, "UpdateToken of a missing token", err, domain.ErrNotFound)
		if called {
			t.Error("UpdateToken called fn for a missing token")
		}
	}},
	{"RevokeTokenFamily", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		live := refreshToken("f-live", "family", at(0))
		used := refreshToken("f-used", "family", at(time.Minute))
		used.UsedAt = at(2 * time.Minute)
		earlier := refreshToken("f-revoked", "family", at(0))
		earlier.RevokedAt = at(time.Minute)
		other := refreshToken("other", "other-family", at(0))
		loose := accessToken("no-family", at(0))
		for _, tok := range []domain.Token{live, used, earlier, other, loose} {
			ok(t, "CreateToken", s.CreateToken(ctx, tok))
		}
		ok(t, "RevokeTokenFamily", s.RevokeTokenFamily(ctx, "family", at(time.Hour)))
		ok(t, "RevokeTokenFamily of an unknown family", s.RevokeTokenFamily(ctx, "unknown", at(time.Hour)))
		ok(t, "RevokeTokenFamily of no family", s.RevokeTokenFamily(ctx, "", at(time.Hour)))

		live.RevokedAt, used.RevokedAt = at(time.Hour), at(time.Hour)
		for _, want := range []domain.Token{live, used, earlier, other, loose} {
			same(t, "token "+want.ID, want, mustGetToken(t, s, want.ID))
		}
	}},
	{"UseNonce", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		// UseNonce judges expiry by the wall clock; stay an hour away from it.
		now := time.Now()
		past, future := now.Add(-time.Hour), now.Add(time.Hour)
		ok(t, "UseNonce", s.UseNonce(ctx, "jti-1", future))
		isErr(t, "UseNonce reused before expiry", s.UseNonce(ctx, "jti-1", future.Add(time.Hour)), domain.ErrAlreadyExists)
		ok(t, "UseNonce of another value", s.UseNonce(ctx, "jti-2", future))

		ok(t, "UseNonce already expired", s.UseNonce(ctx, "jti-3", past))
		ok(t, "UseNonce after the previous use expired", s.UseNonce(ctx, "jti-3", future))
		isErr(t, "UseNonce reused before its new expiry", s.UseNonce(ctx, "jti-3", future), domain.ErrAlreadyExists)
	}},
	{"PurgeExpired", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		// Nonces first: their expiry is judged by the wall clock, years before the token times.
		future := time.Now().Add(time.Hour)
		ok(t, "UseNonce", s.UseNonce(ctx, "live-nonce", future))
		ok(t, "PurgeExpired before the nonce expires", s.PurgeExpired(ctx, future.Add(-time.Minute)))
		isErr(t, "UseNonce after a purge that must keep it", s.UseNonce(ctx, "live-nonce", future), domain.ErrAlreadyExists)

		cutoff := at(time.Hour)
		expired := accessToken("expired", at(0))
		expired.ExpiresAt = cutoff.Add(-time.Microsecond)
		atCutoff := accessToken("at-cutoff", at(0))
		atCutoff.ExpiresAt = cutoff
		live := refreshToken("live", "family", at(0))
		for _, tok := range []domain.Token{expired, atCutoff, live} {
			ok(t, "CreateToken", s.CreateToken(ctx, tok))
		}
		ok(t, "PurgeExpired", s.PurgeExpired(ctx, cutoff))
		_, err := s.GetToken(ctx, "expired")
		isErr(t, "GetToken of a purged token", err, domain.ErrNotFound)
		same(t, "token expiring at the cutoff", atCutoff, mustGetToken(t, s, "at-cutoff"))
		same(t, "live token", live, mustGetToken(t, s, "live"))
		// The nonce expired long before the cutoff: it is gone and may be used again.
		ok(t, "UseNonce after its purge", s.UseNonce(ctx, "live-nonce", future))
	}},
}

var keyTests = []test{
	{"Key/RoundTripOldestFirst", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		mk := func(id string, created time.Duration, status domain.KeyStatus) domain.SigningKey {
			return domain.SigningKey{
				ID: id, Algorithm: "ES256", Use: "sig", Status: status, PrivateKey: sha("pkcs8-" + id),
				CreatedAt: at(created),
			}
		}
		second := mk("k-b", time.Hour, domain.KeyActive)
		second.ActivatedAt = at(2 * time.Hour)
		first := retiredKey("k-c", at(0))
		third := mk("k-a", 2*time.Hour, domain.KeyNext)
		vapid := domain.SigningKey{ID: "vapid", Algorithm: "ES256", Use: "vapid", Status: domain.KeyActive, CreatedAt: at(3 * time.Hour)}
		for _, k := range []domain.SigningKey{second, first, third, vapid} {
			ok(t, "PutKey", s.PutKey(ctx, k))
		}
		got, err := s.ListKeys(ctx)
		ok(t, "ListKeys", err)
		same(t, "keys, oldest first", []domain.SigningKey{first, second, third, vapid}, got)
	}},
	{"Key/PutReplaces", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		k := domain.SigningKey{ID: "k", Algorithm: "RS256", Use: "sig", Status: domain.KeyNext, PrivateKey: sha("k"), CreatedAt: at(0)}
		ok(t, "PutKey", s.PutKey(ctx, k))
		k.Status, k.ActivatedAt = domain.KeyActive, at(time.Hour)
		ok(t, "PutKey activated", s.PutKey(ctx, k))
		got, err := s.ListKeys(ctx)
		ok(t, "ListKeys", err)
		same(t, "keys after replacing", []domain.SigningKey{k}, got)
	}},
}
