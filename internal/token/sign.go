package token

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Sign returns a compact JWS of claims, marshalled with encoding/json (pass a json.RawMessage for
// claims already encoded), signed with the active key of alg. The protected header holds alg, kid,
// and typ when typ is not empty ("at+jwt" for RFC 9068 access tokens, "JWT" for ID tokens). An
// algorithm that is not configured is ErrUnsupportedAlgorithm.
func (k *Keyring) Sign(ctx context.Context, alg, typ string, claims any) (string, error) {
	st, err := k.current(ctx, k.clock.Now())
	if err != nil {
		return "", err
	}
	m := st.active[alg]
	if m == nil {
		if !slices.Contains(k.opts.Algorithms, alg) {
			return "", fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
		}
		return "", fmt.Errorf("token: no active %s key (was the keyring initialised?)", alg)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("token: encode claims: %w", err)
	}
	signer, err := m.signer(typ)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Verify checks a compact JWS the server issued and returns its payload. The kid header must name a
// published key (next, active, or retired within the retention); a kid the keyring does not know
// makes it re-read the store once (at most once a second) before failing. The alg header must be the
// algorithm of that key, so "none", HMAC and algorithm confusion are rejected. When allowedTyp is
// given, the typ header must be one of them (compared case-insensitively, an "application/" prefix
// ignored, as RFC 7515 section 4.1.9 says).
//
// Verify does not look at the claims: callers check exp, iat, iss and aud, because some uses (such as
// id_token_hint) accept expired tokens. Every rejection of the token is ErrInvalidToken; other errors
// mean the keys could not be read.
func (k *Keyring) Verify(ctx context.Context, compact string, allowedTyp ...string) ([]byte, error) {
	if k.optsErr != nil {
		return nil, k.optsErr
	}
	if len(compact) > maxTokenBytes {
		return nil, invalid("token of %d bytes is too large", len(compact))
	}
	obj, err := jose.ParseSignedCompact(compact, k.sigAlgs)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if len(obj.Signatures) != 1 {
		return nil, invalid("want one signature, got %d", len(obj.Signatures))
	}
	h := obj.Signatures[0].Protected
	if h.KeyID == "" {
		return nil, invalid("no kid header")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, invalid("crit header not supported")
	}
	if len(allowedTyp) > 0 {
		typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
		if !typAllowed(typ, allowedTyp) {
			return nil, invalid("typ %q not allowed", typ)
		}
	}

	now := k.clock.Now()
	st, err := k.current(ctx, now)
	if err != nil {
		return nil, err
	}
	lk := st.byKid[h.KeyID]
	if lk == nil {
		st, err = k.reloadForKid(ctx, st, now)
		if lk = st.lookup(h.KeyID); lk == nil {
			if err != nil {
				return nil, err
			}
			return nil, invalid("unknown kid %q", h.KeyID)
		}
	}
	if !lk.publishedAt(now) {
		return nil, invalid("key %q is no longer published", h.KeyID)
	}
	if h.Algorithm != string(lk.m.alg) {
		return nil, invalid("alg %q does not match key %q (%s)", h.Algorithm, h.KeyID, lk.m.alg)
	}
	payload, err := obj.Verify(lk.m.public)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return payload, nil
}

// invalid returns an ErrInvalidToken with a reason.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// typAllowed compares a typ header with the allowed values as RFC 7515 section 4.1.9 says: case
// insensitively, with an "application/" prefix ignored.
func typAllowed(typ string, allowed []string) bool {
	if typ == "" {
		return false
	}
	typ = normalizeTyp(typ)
	for _, a := range allowed {
		if normalizeTyp(a) == typ {
			return true
		}
	}
	return false
}

// normalizeTyp lower-cases a media type and strips an "application/" prefix.
func normalizeTyp(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}
