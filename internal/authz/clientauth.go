package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// ClientAlgorithms are the JWS algorithms we accept from clients (private_key_jwt assertions, signed
// request objects, login_hint_token). HMAC is left out on purpose: we store only hashes of client
// secrets, so we could not verify it.
var ClientAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// maxAssertionLifetime bounds how far in the future a client assertion may expire, which bounds how
// long its jti must be remembered.
const maxAssertionLifetime = time.Hour

// clockSkew is how much we tolerate between the client's clock and ours for iat, nbf and exp.
const clockSkew = time.Minute

// ClientCredentials is what a request carried to authenticate its client, as the HTTP layer found
// it. Exactly one method may be used (RFC 6749 section 2.3).
type ClientCredentials struct {
	// Basic holds HTTP Basic credentials, still form-urlencoded as RFC 6749 section 2.3.1 sends them.
	HasBasic      bool
	BasicID       string
	BasicSecret   string
	FormID        string
	FormSecret    string
	AssertionType string
	Assertion     string
	// Endpoint is the absolute URL the request was sent to; a client assertion may name it as audience.
	Endpoint string
}

func invalidClient(format string, args ...any) *oauth.Error {
	return oauth.Errorf(oauth.ErrInvalidClient, format, args...)
}

// AuthenticateClient checks the credentials and returns the client they prove.
func (s *Service) AuthenticateClient(ctx context.Context, cr ClientCredentials) (domain.Client, error) {
	methods := 0
	for _, used := range []bool{cr.HasBasic, cr.FormSecret != "", cr.Assertion != "" || cr.AssertionType != ""} {
		if used {
			methods++
		}
	}
	switch {
	case methods == 0:
		return domain.Client{}, invalidClient("client authentication is required (client_secret_basic, client_secret_post or private_key_jwt)")
	case methods > 1:
		return domain.Client{}, oauth.NewError(oauth.ErrInvalidRequest, "use exactly one client authentication method")
	case cr.HasBasic:
		id, err1 := url.QueryUnescape(cr.BasicID)
		secret, err2 := url.QueryUnescape(cr.BasicSecret)
		if err1 != nil || err2 != nil {
			return domain.Client{}, invalidClient("malformed HTTP Basic credentials")
		}
		if cr.FormID != "" && cr.FormID != id {
			return domain.Client{}, oauth.NewError(oauth.ErrInvalidRequest, "client_id in the body differs from the authenticated client")
		}
		return s.authenticateSecret(ctx, id, secret, domain.AuthSecretBasic)
	case cr.FormSecret != "":
		if cr.FormID == "" {
			return domain.Client{}, invalidClient("client_secret without client_id")
		}
		return s.authenticateSecret(ctx, cr.FormID, cr.FormSecret, domain.AuthSecretPost)
	default:
		return s.authenticateAssertion(ctx, cr)
	}
}

func (s *Service) authenticateSecret(ctx context.Context, id, secret, method string) (domain.Client, error) {
	c, err := s.getClient(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Client{}, invalidClient("client authentication failed")
	}
	if err != nil {
		return domain.Client{}, err
	}
	if len(c.SecretHash) == 0 || !equalHash(c.SecretHash, hashSecret(secret)) {
		return domain.Client{}, invalidClient("client authentication failed")
	}
	if c.AuthMethod != "" && c.AuthMethod != method {
		return domain.Client{}, invalidClient("client is registered for %s", c.AuthMethod)
	}
	return c, nil
}

// assertionClaims are the RFC 7523 claims of a client assertion.
type assertionClaims struct {
	jwt.Claims
}

func (s *Service) authenticateAssertion(ctx context.Context, cr ClientCredentials) (domain.Client, error) {
	if cr.AssertionType != oauth.ClientAssertionJWTBearer {
		return domain.Client{}, invalidClient("client_assertion_type must be %s", oauth.ClientAssertionJWTBearer)
	}
	tok, err := jwt.ParseSigned(cr.Assertion, ClientAlgorithms)
	if err != nil {
		return domain.Client{}, invalidClient("client_assertion is not a signed JWT: %v", err)
	}
	var unverified assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return domain.Client{}, invalidClient("client_assertion claims: %v", err)
	}
	id := unverified.Issuer
	if cr.FormID != "" && cr.FormID != id {
		return domain.Client{}, invalidClient("client_assertion iss must equal client_id")
	}
	c, err := s.getClient(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Client{}, invalidClient("client authentication failed")
	}
	if err != nil {
		return domain.Client{}, err
	}
	if !c.HasKeys() || (c.AuthMethod != "" && c.AuthMethod != domain.AuthPrivateKeyJWT) {
		return domain.Client{}, invalidClient("client is not registered for private_key_jwt")
	}
	var claims assertionClaims
	if err := s.verifyClientJWT(ctx, c, tok, &claims); err != nil {
		return domain.Client{}, invalidClient("client_assertion signature: %v", err)
	}
	now := s.clock.Now()
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return domain.Client{}, invalidClient("client_assertion iss and sub must both equal the client_id")
	case claims.Expiry == nil:
		return domain.Client{}, invalidClient("client_assertion must have exp")
	case claims.ID == "":
		return domain.Client{}, invalidClient("client_assertion must have jti")
	case !s.audienceIsUs(claims.Audience, cr.Endpoint):
		return domain.Client{}, invalidClient("client_assertion aud must be the issuer or the endpoint URL")
	}
	exp := claims.Expiry.Time()
	if !now.Before(exp.Add(clockSkew)) {
		return domain.Client{}, invalidClient("client_assertion has expired")
	}
	if exp.Sub(now) > maxAssertionLifetime {
		return domain.Client{}, invalidClient("client_assertion exp is more than %s away", maxAssertionLifetime)
	}
	if claims.NotBefore != nil && now.Add(clockSkew).Before(claims.NotBefore.Time()) {
		return domain.Client{}, invalidClient("client_assertion is not valid yet")
	}
	if err := s.store.UseNonce(ctx, "client_assertion:"+c.ID+":"+claims.ID, exp.Add(clockSkew)); err != nil {
		if errors.Is(err, domain.ErrAlreadyExists) {
			return domain.Client{}, invalidClient("client_assertion jti was already used")
		}
		return domain.Client{}, err
	}
	return c, nil
}

// audienceIsUs accepts the issuer (with or without its trailing slash), the token endpoint, or the
// endpoint the request was sent to, as RFC 7523 and OpenID Connect Core section 9 allow.
func (s *Service) audienceIsUs(aud jwt.Audience, endpoint string) bool {
	iss := strings.TrimSuffix(s.opts.Issuer, "/")
	for _, a := range aud {
		switch strings.TrimSuffix(a, "/") {
		case iss, iss + "/oauth/token", strings.TrimSuffix(endpoint, "/"):
			return true
		}
	}
	return false
}

// verifyClientJWT checks a JWT's signature with the client's registered keys and decodes its claims.
func (s *Service) verifyClientJWT(ctx context.Context, c domain.Client, tok *jwt.JSONWebToken, out any) error {
	if len(tok.Headers) != 1 {
		return errors.New("exactly one signature expected")
	}
	kid := tok.Headers[0].KeyID
	alg := tok.Headers[0].Algorithm
	keys, err := s.jwks.keys(ctx, c, kid)
	if err != nil {
		return err
	}
	var lastErr error = errors.New("no registered key matches")
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public() // a client that pasted a private JWK must not make us use it as one
		if !pub.Valid() {
			continue
		}
		if err := tok.Claims(pub.Key, out); err == nil {
			return nil
		} else {
			lastErr = err
		}
	}
	return lastErr
}

// clientKeySets caches client key sets: parsed inline sets, and fetched jwks_uri documents, which
// are refetched when they are stale or a JWT names a kid they lack (at most once per
// jwksRefetchMin, so a client cannot make us hammer its JWKS host).
type clientKeySets struct {
	http  *http.Client
	clock domain.Clock
	mu    sync.Mutex
	cache map[string]cachedKeySet
}

type cachedKeySet struct {
	set       jose.JSONWebKeySet
	fetchedAt time.Time
}

const (
	jwksTTL        = 10 * time.Minute
	jwksRefetchMin = 30 * time.Second
	maxJWKSBytes   = 256 << 10
)

func newClientKeySets(hc *http.Client, clock domain.Clock) *clientKeySets {
	return &clientKeySets{http: hc, clock: clock, cache: map[string]cachedKeySet{}}
}

// keys returns the client's keys that match kid (all keys when kid is empty).
func (c *clientKeySets) keys(ctx context.Context, client domain.Client, kid string) ([]jose.JSONWebKey, error) {
	if len(client.JWKS) > 0 {
		set, err := c.inline(client.JWKS)
		if err != nil {
			return nil, err
		}
		return selectKeys(set, kid), nil
	}
	if client.JWKSURI == "" {
		return nil, errors.New("client has no registered keys")
	}
	now := c.clock.Now()
	c.mu.Lock()
	cached, ok := c.cache[client.JWKSURI]
	c.mu.Unlock()
	stale := !ok || now.Sub(cached.fetchedAt) > jwksTTL
	if !stale {
		if found := selectKeys(cached.set, kid); len(found) > 0 || now.Sub(cached.fetchedAt) < jwksRefetchMin {
			return found, nil
		}
	}
	set, err := c.fetch(ctx, client.JWKSURI)
	if err != nil {
		if ok {
			return selectKeys(cached.set, kid), nil
		}
		return nil, err
	}
	c.mu.Lock()
	c.cache[client.JWKSURI] = cachedKeySet{set: set, fetchedAt: now}
	c.mu.Unlock()
	return selectKeys(set, kid), nil
}

func (c *clientKeySets) inline(raw json.RawMessage) (jose.JSONWebKeySet, error) {
	key := "inline:" + string(raw)
	c.mu.Lock()
	cached, ok := c.cache[key]
	c.mu.Unlock()
	if ok {
		return cached.set, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("client jwks: %w", err)
	}
	c.mu.Lock()
	c.cache[key] = cachedKeySet{set: set}
	c.mu.Unlock()
	return set, nil
}

func (c *clientKeySets) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return set, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return set, fmt.Errorf("fetch client jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("fetch client jwks_uri: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return set, fmt.Errorf("fetch client jwks_uri: %w", err)
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return set, fmt.Errorf("client jwks_uri document: %w", err)
	}
	return set, nil
}

func selectKeys(set jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}
