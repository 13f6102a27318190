package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/server"
	"github.com/countersign/countersign/internal/store/sqlstore"
	"github.com/countersign/countersign/internal/testserver"
	"github.com/countersign/countersign/internal/token"
	"github.com/countersign/countersign/oauth"
)

// fakeClock is the settable clock shared by the server and the test's devices.
type fakeClock = testserver.FakeClock

// harness is a whole Countersign server on httptest with a real SQLite store, a fake clock, and
// clients and users for every test.
type harness struct {
	t         testing.TB
	srv       *httptest.Server
	svc       *authz.Service
	store     domain.Store
	clock     *fakeClock
	worker    *notify.Worker
	keys      *token.Keyring
	alice     *authenticator.Device
	clientEC  *ecdsa.PrivateKey // the private_key_jwt client's key
	clientKID string            // its kid; "k1" when empty
	callback  *callbackReceiver
	handler   http.Handler
}

// callbackReceiver records CIBA ping and push callbacks.
type callbackReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []receivedCallback
	fail int // answer 500 this many times first
}

type receivedCallback struct {
	Path          string
	Authorization string
	Body          map[string]any
}

func newCallbackReceiver(t testing.TB) *callbackReceiver {
	cr := &callbackReceiver{}
	cr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cr.mu.Lock()
		defer cr.mu.Unlock()
		if cr.fail > 0 {
			cr.fail--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		cr.got = append(cr.got, receivedCallback{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: m})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(cr.srv.Close)
	return cr
}

func (cr *callbackReceiver) received() []receivedCallback {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return append([]receivedCallback(nil), cr.got...)
}

type authzOptions = authz.Options

type harnessOption func(*authz.Options)

func randomString() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	return newHarnessSync(t, "normal", opts...)
}

// newHarnessSync is newHarness with SQLite's synchronous mode chosen: tests use "normal" for speed,
// benchmarks "full" because that is what production runs.
func newHarnessSync(t testing.TB, synchronous string, opts ...harnessOption) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "countersign.db"), sqlstore.SQLiteOptions{Synchronous: synchronous})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &harness{t: t, store: store, clock: testserver.NewFakeClock(time.Now().UTC().Truncate(time.Second)), callback: newCallbackReceiver(t)}

	// The issuer must be known before the server starts: start the listener first.
	h.srv = httptest.NewUnstartedServer(nil)
	// localhost rather than 127.0.0.1: WebAuthn relying parties must be domain names.
	_, port, _ := net.SplitHostPort(h.srv.Listener.Addr().String())
	issuer := "http://localhost:" + port + "/"

	dt := testserver.DetailTypes(t)
	o := authz.Options{Issuer: issuer, DetailTypes: dt, PollInterval: 5 * time.Second, MaxPendingPerUser: 5, MaxRequestsPerMinute: 10}
	for _, f := range opts {
		f(&o)
	}
	h.keys = token.NewKeyring(store, h.clock, token.Options{Algorithms: []string{token.ES256, token.RS256}, Generate: testserver.KeyGenerator})
	if err := h.keys.Init(ctx); err != nil {
		t.Fatal(err)
	}
	metrics := server.NewMetrics(prometheusRegistry())
	h.svc = authz.New(store, h.keys, h.clock, o, metrics)
	h.worker = notify.NewWorker(store, h.clock, map[string]notify.Sender{
		notify.KindCIBAPing: notify.NewCIBACallback(nil),
		notify.KindCIBAPush: notify.NewCIBACallback(nil),
	}, notify.WorkerOptions{MaxAttempts: 3}, nil)
	srv, err := server.New(h.svc, h.keys, server.Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	h.handler = srv
	h.srv.Config.Handler = srv
	h.srv.Start()
	t.Cleanup(h.srv.Close)

	h.clientEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h.seed(ctx)
	h.alice = h.enroll("alice")
	return h
}

func jwksOf(t testing.TB, pub crypto.PublicKey, kid string) json.RawMessage {
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// seed stores the clients and users the tests use.
func (h *harness) seed(ctx context.Context) {
	t := h.t
	ciba := []string{oauth.GrantTypeCIBA}
	scopes := []string{"openid", "profile", "email"}
	both := []string{"trade_order", "payment_initiation"}
	secret := func(s string) []byte { return authz.HashClientSecret(s) }
	clients := []domain.Client{
		{ID: "agent", Name: "DemoTradePro Agent", SecretHash: secret("agent-secret"), GrantTypes: []string{oauth.GrantTypeCIBA, oauth.GrantTypeRefreshToken},
			DeliveryMode: domain.DeliveryPoll, AuthorizationDetailsTypes: both, Scopes: append(scopes, "offline_access"), RefreshTokens: true, UserCodeParameter: true},
		{ID: "other", Name: "Other Agent", SecretHash: secret("other-secret"), GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll,
			AuthorizationDetailsTypes: []string{"trade_order"}, Scopes: scopes},
		{ID: "auth0", Name: "Auth0 style", SecretHash: secret("auth0-secret"), GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll,
			Scopes: scopes, ExpiredAsAccessDenied: true},
		{ID: "basic-only", SecretHash: secret("basic-secret"), AuthMethod: domain.AuthSecretBasic, GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll, Scopes: scopes},
		{ID: "agent-ping", Name: "Ping Agent", SecretHash: secret("ping-secret"), GrantTypes: ciba, DeliveryMode: domain.DeliveryPing,
			NotificationEndpoint: h.callback.srv.URL + "/ping", AuthorizationDetailsTypes: both, Scopes: scopes},
		{ID: "agent-push", Name: "Push Agent", SecretHash: secret("push-secret"), GrantTypes: ciba, DeliveryMode: domain.DeliveryPush,
			NotificationEndpoint: h.callback.srv.URL + "/push", AuthorizationDetailsTypes: both, Scopes: scopes, IDTokenSigningAlg: "ES256"},
		{ID: "agent-jwt", Name: "JWT Agent", AuthMethod: domain.AuthPrivateKeyJWT, JWKS: jwksOf(t, &h.clientEC.PublicKey, "k1"),
			GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll, AuthorizationDetailsTypes: both, Scopes: scopes},
		{ID: "agent-signed", Name: "Signed Requests", SecretHash: secret("signed-secret"), JWKS: jwksOf(t, &h.clientEC.PublicKey, "k1"),
			RequestSigningAlg: "ES256", GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll, AuthorizationDetailsTypes: both, Scopes: scopes},
		{ID: "api", Name: "Trading API", SecretHash: secret("api-secret"), Scopes: scopes},
		{ID: "narrow", Name: "Narrow Audience", SecretHash: secret("narrow-secret"), GrantTypes: ciba, DeliveryMode: domain.DeliveryPoll,
			Scopes: scopes, Audiences: []string{"https://api.tradepro.example"}},
	}
	for _, c := range clients {
		if err := h.store.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	users := []domain.User{
		{Subject: "alice", Email: "alice@example.com", Name: "Alice Example"},
		{Subject: "bob", Email: "bob@example.com", Name: "Bob NoDevice"},
		{Subject: "carol", Email: "carol@example.com", Name: "Carol Code", UserCodeHash: cheapUserCodeHash("4711")},
		{Subject: "dave@corp", Email: "dave@example.com", Name: "Dave"},
	}
	for _, u := range users {
		if err := h.store.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	h.enroll("carol")
	h.enroll("dave@corp")
}

// cheapUserCodeHash builds a stored user code in the documented format with few iterations, so tests
// stay fast (the iteration count travels in the hash).
func cheapUserCodeHash(code string) string {
	salt := []byte("0123456789abcdef")
	key, _ := pbkdf2.Key(sha256.New, code, salt, 1000, 32)
	enc := base64.RawStdEncoding
	return "pbkdf2-sha256$1000$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key)
}

// enroll invites the user and enrolls a terminal-style device for them.
func (h *harness) enroll(sub string) *authenticator.Device {
	h.t.Helper()
	return h.enrollWith(sub, h.srv.Client())
}

// inProcess is an HTTP client that hands requests straight to the server's handler, for benchmarks
// that measure the server rather than loopback networking.
func (h *harness) inProcess() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		return rec.Result(), nil
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// enrollWith enrolls a device that talks to the server through hc.
func (h *harness) enrollWith(sub string, hc *http.Client) *authenticator.Device {
	h.t.Helper()
	link, _, err := h.svc.Invite(context.Background(), sub)
	if err != nil {
		h.t.Fatal(err)
	}
	dev, err := authenticator.EnrollAt(context.Background(), hc, link, sub+"'s terminal", h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	dev.SetClock(h.clock.Now)
	return dev
}

func (h *harness) url(path string) string { return strings.TrimSuffix(h.issuer(), "/") + path }

func (h *harness) issuer() string { return h.svc.Issuer() }

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r response) str(key string) string { s, _ := r.JSON[key].(string); return s }

// post sends a form with HTTP Basic credentials (id, secret), or none when id is empty.
func (h *harness) post(path, id, secret string, form url.Values, header ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	_ = json.Unmarshal(body, &out.JSON)
	return out
}

func (h *harness) get(path string, header ...string) response {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return h.do(req)
}

// tradeForm is a valid backchannel request from agent for alice.
func tradeForm(extra ...string) url.Values {
	f := url.Values{
		"scope":                 {"openid"},
		"login_hint":            {"alice"},
		"binding_message":       {"Buy 10 NVDA"},
		"authorization_details": {`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			f.Del(extra[i])
		} else {
			f.Set(extra[i], extra[i+1])
		}
	}
	return f
}

// start asks for approval and returns the auth_req_id.
func (h *harness) start(id, secret string, form url.Values) string {
	h.t.Helper()
	r := h.post("/bc-authorize", id, secret, form)
	if r.Status != 200 {
		h.t.Fatalf("bc-authorize: %d %s", r.Status, r.Body)
	}
	return r.str("auth_req_id")
}

func (h *harness) poll(id, secret, authReqID string, header ...string) response {
	h.t.Helper()
	return h.post("/oauth/token", id, secret, url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {authReqID}}, header...)
}

// decide finds the device's pending request with the binding message and decides it.
func (h *harness) decide(dev *authenticator.Device, binding string, d domain.Decision) authz.RequestView {
	h.t.Helper()
	pending, err := dev.Pending(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, v := range pending {
		if v.BindingMessage == binding {
			out, err := dev.Decide(context.Background(), v, d)
			if err != nil {
				h.t.Fatal(err)
			}
			return out
		}
	}
	h.t.Fatalf("no pending request %q among %d", binding, len(pending))
	return authz.RequestView{}
}

// approvedToken runs a whole flow for agent and returns the token response.
func (h *harness) approvedToken(binding string) response {
	h.t.Helper()
	id := h.start("agent", "agent-secret", tradeForm("binding_message", binding))
	h.decide(h.alice, binding, domain.DecisionApprove)
	r := h.poll("agent", "agent-secret", id)
	if r.Status != 200 {
		h.t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	return r
}

// jwtPayload decodes a JWT's payload without verifying it (the tests verify separately).
func jwtPayload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jwtHeader(t *testing.T, jwt string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// signJWT signs claims with the private_key_jwt client's key.
func (h *harness) signJWT(claims map[string]any) string {
	h.t.Helper()
	kid := h.clientKID
	if kid == "" {
		kid = "k1"
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: h.clientEC}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		h.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		h.t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func (h *harness) assertion(aud string, jti string, exp time.Time) string {
	return h.signJWT(map[string]any{"iss": "agent-jwt", "sub": "agent-jwt", "aud": aud, "jti": jti,
		"exp": exp.Unix(), "iat": h.clock.Now().Unix()})
}

// expectError checks an OAuth error answer: status, code, JSON content type.
func expectError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want application/json", ct)
	}
	if r.str("error_description") == "" {
		t.Fatalf("error without description: %s", r.Body)
	}
}

func must[T any](t *testing.T, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func authDecision(code string) authenticator.DecisionOptions {
	return authenticator.DecisionOptions{VerificationCode: code}
}

func reportDecision() authenticator.DecisionOptions {
	return authenticator.DecisionOptions{Report: true}
}
