package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/oauth"
)

// keyCache holds the issuer's public keys. Keys are fetched on first use, again when they are
// older than CacheTTL, and early when a token names a key ID not in the cache (the issuer rotated
// its keys) — but never twice within MinRefresh, whatever the tokens say.
type keyCache struct {
	cfg Config

	// fetchMu serializes fetches, so a burst of tokens with a new key ID causes one fetch.
	fetchMu sync.Mutex

	mu        sync.Mutex
	jwksURI   string
	keys      map[string]jose.JSONWebKey // by kid
	fetched   time.Time                  // last successful fetch
	attempted time.Time                  // last fetch, successful or not
}

func newKeyCache(cfg Config) *keyCache {
	return &keyCache{cfg: cfg, jwksURI: cfg.JWKSURI}
}

// get returns the public key for kid, checked to fit alg.
func (c *keyCache) get(ctx context.Context, kid, alg string) (*jose.JSONWebKey, error) {
	k, found, fresh := c.lookup(kid)
	if !found || !fresh {
		c.fetchMu.Lock()
		// Another request may have fetched while this one waited for the lock.
		k, found, fresh = c.lookup(kid)
		if !found || !fresh {
			c.mu.Lock()
			recent := !c.attempted.IsZero() && c.cfg.Now().Sub(c.attempted) < c.cfg.MinRefresh
			c.mu.Unlock()
			if !recent {
				err := c.fetch(ctx)
				k, found, _ = c.lookup(kid)
				if err != nil && !found {
					c.fetchMu.Unlock()
					return nil, oauth.NewError(oauth.ErrTemporarilyUnavailable, "the issuer's signing keys cannot be fetched").WithCause(err)
				}
				// A failed refresh of stale keys keeps using them: better than refusing every token.
			}
		}
		c.fetchMu.Unlock()
	}
	if !found {
		c.mu.Lock()
		never := c.fetched.IsZero()
		c.mu.Unlock()
		if never {
			// The keys were never read (the issuer is down, and MinRefresh keeps us from asking
			// again yet): the token may be fine.
			return nil, oauth.NewError(oauth.ErrTemporarilyUnavailable, "the issuer's signing keys are not available yet")
		}
		return nil, invalidToken("the token is signed with an unknown key")
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return nil, invalidToken("the token's key is for %s, not %s", k.Algorithm, alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, invalidToken("the token's key is not a signing key")
	}
	pub := k.Public() // a JWKS that leaks a private key must not make us use it as one
	return &pub, nil
}

func (c *keyCache) lookup(kid string) (jose.JSONWebKey, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[kid]
	return k, ok, !c.fetched.IsZero() && c.cfg.Now().Sub(c.fetched) < c.cfg.CacheTTL
}

// fetch reads the keys (and, the first time, the discovery document that says where they are).
func (c *keyCache) fetch(ctx context.Context) error {
	now := c.cfg.Now()
	c.mu.Lock()
	c.attempted = now
	uri := c.jwksURI
	c.mu.Unlock()
	if uri == "" {
		var md oauth.Metadata
		if err := c.getJSON(ctx, strings.TrimSuffix(c.cfg.Issuer, "/")+"/.well-known/openid-configuration", &md); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if md.Issuer != c.cfg.Issuer || md.JWKSURI == "" {
			return fmt.Errorf("discovery names issuer %q and jwks_uri %q", md.Issuer, md.JWKSURI)
		}
		uri = md.JWKSURI
		c.mu.Lock()
		c.jwksURI = uri
		c.mu.Unlock()
	}
	var set jose.JSONWebKeySet
	if err := c.getJSON(ctx, uri, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Valid() {
			keys[k.KeyID] = k
		}
	}
	if len(keys) == 0 {
		return errors.New("jwks: no usable keys")
	}
	c.mu.Lock()
	c.keys, c.fetched = keys, now
	c.mu.Unlock()
	return nil
}

func (c *keyCache) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
