// Package resource is the Go middleware for APIs that execute what a person approved: it verifies
// the bearer JWT access token a Countersign server issued (RFC 9068: signature against the
// issuer's published keys, typ at+jwt, iss, aud, exp, nbf, iat), refuses a token used before (one
// approval, one action), and puts the claims and the approved RFC 9396 authorization_details in
// the request's context. Require then checks that the operation the API is about to perform is one
// the person approved.
//
//	v, err := resource.New(resource.Config{Issuer: "https://countersign.example/", Audience: "https://api.tradepro.example"})
//	mux.Handle("POST /orders", v.Middleware(http.HandlerFunc(placeOrder)))
//	// in placeOrder: order, err := resource.Require(r, "trade_order", func(d TradeOrder) bool { return d.Symbol == body.Symbol && d.Quantity == body.Quantity })
//
// Errors are RFC 6750 answers: 401 invalid_token (with WWW-Authenticate) for a missing, invalid,
// expired or replayed token, 403 insufficient_scope for an operation the token does not cover.
package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/oauth"
)

// Defaults of Config.
const (
	DefaultLeeway     = 30 * time.Second
	DefaultCacheTTL   = 10 * time.Minute
	DefaultMinRefresh = 10 * time.Second
)

// maxTokenBytes bounds the tokens parsed; a token with many authorization_details is still far
// smaller.
const maxTokenBytes = 64 << 10

// algorithms are the JWS algorithms accepted: what Countersign signs with (ES256 access tokens,
// RS256 and PS256 keys). "none" and HMAC are never accepted.
var algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256}

// Config configures a Verifier.
type Config struct {
	// Issuer is the Countersign issuer identifier; tokens must carry it exactly as iss. Its keys are
	// found through discovery (Issuer + ".well-known/openid-configuration") unless JWKSURI is set.
	Issuer string
	// Audience is this API's identifier; tokens must name it in aud (the agent asks for it with
	// client.Request.Audience).
	Audience string
	// JWKSURI skips discovery.
	JWKSURI string
	// HTTPClient fetches discovery and keys; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat (default DefaultLeeway).
	Leeway time.Duration
	// CacheTTL is how long fetched keys are used before they are fetched again (default
	// DefaultCacheTTL). A token with a key ID not in the cache causes a fetch sooner.
	CacheTTL time.Duration
	// MinRefresh is the least time between two fetches of the keys (default DefaultMinRefresh), so
	// that tokens with made-up key IDs cannot make the API hammer the issuer.
	MinRefresh time.Duration
	// Replay remembers the jti of every accepted token until it expires, so that each token is
	// accepted once. Nil means an in-memory store (NewMemoryReplayStore); with several API replicas
	// use a shared one.
	Replay ReplayStore
	// AllowReplay accepts a token any number of times until it expires (no replay guard).
	AllowReplay bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks access tokens of one issuer for one audience. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	keys *keyCache
}

// New returns a Verifier. It fetches nothing yet: discovery and keys are read on first use, so an
// API can start while the issuer is briefly unreachable.
func New(cfg Config) (*Verifier, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("resource: Config.Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("resource: Config.Audience is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = DefaultMinRefresh
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Replay == nil && !cfg.AllowReplay {
		cfg.Replay = NewMemoryReplayStore()
	}
	return &Verifier{cfg: cfg, keys: newKeyCache(cfg)}, nil
}

// Token is a verified access token.
type Token struct {
	oauth.AccessTokenClaims
	// NotBefore is the nbf claim (Unix seconds), zero when absent.
	NotBefore int64 `json:"nbf,omitempty"`
	// Details are the approved authorization_details.
	Details []Detail `json:"-"`
	// Raw is the token as received.
	Raw string `json:"-"`
}

// Detail is one approved authorization detail (RFC 9396): its type and the whole object.
type Detail struct {
	Type string
	Raw  json.RawMessage
}

// Decode unmarshals the detail into v.
func (d Detail) Decode(v any) error { return json.Unmarshal(d.Raw, v) }

// MarshalJSON writes the detail as received.
func (d Detail) MarshalJSON() ([]byte, error) { return d.Raw, nil }

func invalidToken(format string, args ...any) *oauth.Error {
	return oauth.Errorf(oauth.ErrInvalidToken, format, args...)
}

// Verify checks a compact JWT access token and returns its claims. It does not consult the replay
// guard (the Middleware does). Rejections are *oauth.Error invalid_token; temporarily_unavailable
// means the issuer's keys could not be read.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > maxTokenBytes {
		return nil, invalidToken("the token is too large")
	}
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		return nil, invalidToken("the token is not a JWT signed with ES256, RS256 or PS256")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("the token must have exactly one signature")
	}
	h := jws.Signatures[0].Protected
	// RFC 9068 section 4: the typ header tells access tokens from ID tokens and other JWTs signed
	// with the same keys.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, invalidToken("the token's typ is %q, not at+jwt", typ)
	}
	key, err := v.keys.get(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalidToken("the token's signature does not verify")
	}
	var tok Token
	if err := json.Unmarshal(payload, &tok); err != nil {
		return nil, invalidToken("the token's claims are malformed")
	}
	tok.Raw = raw
	now := v.cfg.Now()
	skew := v.cfg.Leeway
	switch {
	case tok.Issuer != v.cfg.Issuer:
		return nil, invalidToken("the token was issued by %q, not %q", tok.Issuer, v.cfg.Issuer)
	case !tok.Audience.Contains(v.cfg.Audience):
		return nil, invalidToken("the token is not for this API (aud %q)", v.cfg.Audience)
	case tok.ExpiresAt == 0 || tok.IssuedAt == 0:
		return nil, invalidToken("the token has no exp or iat")
	case !now.Before(time.Unix(tok.ExpiresAt, 0).Add(skew)):
		return nil, invalidToken("the token has expired")
	case tok.NotBefore != 0 && now.Add(skew).Before(time.Unix(tok.NotBefore, 0)):
		return nil, invalidToken("the token is not valid yet")
	case now.Add(skew).Before(time.Unix(tok.IssuedAt, 0)):
		return nil, invalidToken("the token was issued in the future")
	}
	if len(tok.AuthorizationDetails) > 0 && string(tok.AuthorizationDetails) != "null" {
		var details []json.RawMessage
		if err := json.Unmarshal(tok.AuthorizationDetails, &details); err != nil {
			return nil, invalidToken("the token's authorization_details are not an array")
		}
		for _, d := range details {
			var head struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(d, &head); err != nil || head.Type == "" {
				return nil, invalidToken("an authorization detail in the token has no type")
			}
			tok.Details = append(tok.Details, Detail{Type: head.Type, Raw: d})
		}
	}
	return &tok, nil
}

func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return strings.TrimPrefix(typ, "application/") == "at+jwt"
}

type tokenKey struct{}

// Middleware verifies the request's bearer token, refuses a token seen before (unless
// AllowReplay), and calls next with the token in the context (FromContext, Require). Failures are
// answered with RFC 6750 errors and next is not called.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := bearer(r)
		if !ok {
			// RFC 6750 section 3.1: a request without credentials gets a challenge without an error code.
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, http.StatusUnauthorized, invalidToken("a bearer access token is required"))
			return
		}
		tok, err := v.Verify(r.Context(), raw)
		if err == nil && !v.cfg.AllowReplay {
			err = v.consume(r.Context(), tok)
		}
		if err != nil {
			WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// consume records the token's jti, refusing it when it was used before.
func (v *Verifier) consume(ctx context.Context, tok *Token) error {
	if tok.JWTID == "" {
		return invalidToken("the token has no jti, so its single use cannot be enforced")
	}
	// Remembered as long as the token could still pass the exp check.
	first, err := v.cfg.Replay.Use(ctx, tok.JWTID, time.Unix(tok.ExpiresAt, 0).Add(v.cfg.Leeway))
	if err != nil {
		return oauth.NewError(oauth.ErrTemporarilyUnavailable, "the replay guard is unavailable").WithCause(err)
	}
	if !first {
		return invalidToken("the token was already used")
	}
	return nil
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// FromContext returns the token the Middleware verified.
func FromContext(ctx context.Context) (*Token, bool) {
	tok, ok := ctx.Value(tokenKey{}).(*Token)
	return tok, ok
}

// Require returns the first approved detail of type typ that, decoded into a T, satisfies match:
// the check that the operation about to run is one the person approved. Details of the type that
// do not decode into T do not match. When none matches the error is *oauth.Error
// insufficient_scope, which WriteError answers with 403.
func Require[T any](r *http.Request, typ string, match func(T) bool) (T, error) {
	var zero T
	tok, ok := FromContext(r.Context())
	if !ok {
		return zero, invalidToken("no verified access token: is the handler behind resource.Verifier.Middleware?")
	}
	for _, d := range tok.Details {
		if d.Type != typ {
			continue
		}
		var v T
		if err := d.Decode(&v); err != nil {
			continue
		}
		if match == nil || match(v) {
			return v, nil
		}
	}
	return zero, oauth.Errorf(oauth.ErrInsufficientScope, "the approved authorization_details include no %s that matches this request", typ)
}

// WriteError answers with an RFC 6750 error: 401 invalid_token and 403 insufficient_scope with a
// WWW-Authenticate challenge, 400 invalid_request, 503 temporarily_unavailable; anything that is
// not an *oauth.Error is a 500 whose details are not sent.
func WriteError(w http.ResponseWriter, err error) {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		writeJSON(w, http.StatusInternalServerError, oauth.NewError(oauth.ErrServerError, "internal error"))
		return
	}
	status := http.StatusBadRequest
	switch oe.Code {
	case oauth.ErrInvalidToken:
		status = http.StatusUnauthorized
	case oauth.ErrInsufficientScope:
		status = http.StatusForbidden
	case oauth.ErrTemporarilyUnavailable:
		status = http.StatusServiceUnavailable
	case oauth.ErrServerError:
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, oe.Code, strings.ReplaceAll(oe.Description, `"`, `'`)))
	}
	writeJSON(w, status, oauth.NewError(oe.Code, oe.Description))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
