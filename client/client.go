package client

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/countersign/countersign/oauth"
)

// Client authentication methods (RFC 6749 section 2.3.1, OpenID Connect Core section 9).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// requestTimeout bounds one HTTP exchange with the server (a long poll gets its wait on top).
const requestTimeout = 30 * time.Second

// maxBody bounds what we read of an answer.
const maxBody = 1 << 20

// Config configures a Client.
type Config struct {
	// Issuer is the authorization server's issuer identifier, such as "https://countersign.example/".
	// Its discovery document is read from Issuer + ".well-known/openid-configuration".
	Issuer string
	// ClientID is the agent's client_id.
	ClientID string
	// ClientSecret authenticates the client with client_secret_basic (or AuthMethod). Set it or
	// PrivateKey, not both.
	ClientSecret string
	// AuthMethod chooses how ClientSecret is sent: AuthClientSecretBasic (the default) or
	// AuthClientSecretPost. It is ignored with PrivateKey.
	AuthMethod string
	// PrivateKey authenticates the client with private_key_jwt (RFC 7523): each request carries a
	// short-lived assertion signed with it. Any crypto.Signer works (an HSM or KMS key too): ECDSA
	// P-256 signs ES256, RSA signs RS256 (or PS256 with SigningAlg), Ed25519 signs EdDSA.
	PrivateKey crypto.Signer
	// KeyID is the kid of PrivateKey as registered with the server (in the client's JWKS).
	KeyID string
	// SigningAlg overrides the algorithm chosen for PrivateKey ("PS256" for an RSA key).
	SigningAlg string
	// HTTPClient sends the requests; nil means a client without a global timeout (every request
	// gets its own deadline, longer for long polls). A Timeout set here caps long polls too.
	HTTPClient *http.Client
	// Ping, for a client registered in CIBA ping mode, is the handler mounted at the client's
	// backchannel_client_notification_endpoint. Requests then carry a fresh
	// client_notification_token and waiting ends when the server's notification arrives (with a
	// slow fallback poll in case it is lost). Long polling is not used in ping mode.
	Ping *PingHandler
	// DisableLongPoll makes the client poll at the interval even when the server offers the
	// Prefer: wait long poll.
	DisableLongPoll bool
}

// Client asks one authorization server for approvals on behalf of one OAuth client. It is safe for
// concurrent use.
type Client struct {
	cfg Config
	md  oauth.Metadata
	hc  *http.Client

	// now and wait are the clock; tests replace them.
	now  func() time.Time
	wait func(ctx context.Context, d time.Duration, wake <-chan struct{}) error
}

// New reads the server's discovery document and returns a client.
func New(ctx context.Context, cfg Config) (*Client, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("client: Config.Issuer is required")
	case cfg.ClientID == "":
		return nil, errors.New("client: Config.ClientID is required")
	case cfg.ClientSecret == "" && cfg.PrivateKey == nil:
		return nil, errors.New("client: set Config.ClientSecret or Config.PrivateKey")
	case cfg.ClientSecret != "" && cfg.PrivateKey != nil:
		return nil, errors.New("client: set only one of Config.ClientSecret and Config.PrivateKey")
	}
	switch cfg.AuthMethod {
	case "", AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT:
	default:
		return nil, fmt.Errorf("client: unknown Config.AuthMethod %q", cfg.AuthMethod)
	}
	if cfg.PrivateKey != nil {
		alg, err := signingAlg(cfg.PrivateKey, cfg.SigningAlg)
		if err != nil {
			return nil, err
		}
		cfg.SigningAlg = alg
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient, now: time.Now, wait: sleep}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	md, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	c.md = md
	// From here on the issuer is the server's own spelling of it.
	c.cfg.Issuer = md.Issuer
	return c, nil
}

// Metadata returns the server's discovery document.
func (c *Client) Metadata() oauth.Metadata { return c.md }

// discover reads OpenID Connect discovery, or RFC 8414 metadata where that is all there is.
func (c *Client) discover(ctx context.Context) (oauth.Metadata, error) {
	base := strings.TrimSuffix(c.cfg.Issuer, "/")
	var md oauth.Metadata
	var err error
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		md, err = c.getMetadata(ctx, base+path)
		var he *HTTPError
		if errors.As(err, &he) && he.StatusCode == http.StatusNotFound {
			continue
		}
		break
	}
	if err != nil {
		return oauth.Metadata{}, fmt.Errorf("client: discovery at %s: %w", base, err)
	}
	// OpenID Connect Discovery section 4.3: the document must be about the issuer we asked for.
	// A missing or extra trailing slash is forgiven, since people type issuers by hand.
	if strings.TrimSuffix(md.Issuer, "/") != base {
		return oauth.Metadata{}, fmt.Errorf("client: discovery at %s names issuer %q", base, md.Issuer)
	}
	if md.TokenEndpoint == "" || md.BackchannelAuthenticationEndpoint == "" {
		return oauth.Metadata{}, fmt.Errorf("client: %s does not offer CIBA (no backchannel_authentication_endpoint or token_endpoint)", md.Issuer)
	}
	return md, nil
}

func (c *Client) getMetadata(ctx context.Context, u string) (oauth.Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return oauth.Metadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	status, h, body, err := c.do(req)
	if err != nil {
		return oauth.Metadata{}, err
	}
	if status != http.StatusOK {
		return oauth.Metadata{}, parseError(status, h, body)
	}
	var md oauth.Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return oauth.Metadata{}, fmt.Errorf("malformed discovery document: %w", err)
	}
	return md, nil
}

func (c *Client) do(req *http.Request) (int, http.Header, []byte, error) {
	req.Header.Set("User-Agent", "countersign-go-client")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, &url.Error{Op: "read", URL: req.URL.String(), Err: err}
	}
	return resp.StatusCode, resp.Header, body, nil
}

// call POSTs an authenticated form to endpoint and decodes a 200 answer into out (if not nil).
// Other answers become *oauth.Error or *HTTPError.
func (c *Client) call(ctx context.Context, endpoint string, form url.Values, header http.Header, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var basicID, basicSecret string
	switch {
	case c.cfg.PrivateKey != nil:
		assertion, err := c.assertion()
		if err != nil {
			return err
		}
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		form.Set("client_assertion", assertion)
	case c.cfg.AuthMethod == AuthClientSecretPost:
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_secret", c.cfg.ClientSecret)
	default:
		// RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
		basicID, basicSecret = url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(form.Encode()))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basicID != "" {
		req.SetBasicAuth(basicID, basicSecret)
	}
	status, h, body, err := c.do(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return parseError(status, h, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: malformed answer from %s: %w", endpoint, err)
	}
	return nil
}

// sleep waits d, or until wake is closed or ctx ends.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
		return nil
	case <-t.C:
		return nil
	}
}
