// Package testserver starts a whole Countersign server for tests outside internal/server: the real
// HTTP server on httptest, a real SQLite store in a temporary directory, the signing keyring, the
// approval service and the notification worker, with clients, users and an enrolled authenticator
// device ready to use. It is how the SDK packages (client, approval, resource) and the CLI test
// against the real thing instead of a mock.
//
// It is a normal package so that tests in several packages can share it, but only tests may import
// it: it depends on testing.
package testserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/server"
	"github.com/countersign/countersign/internal/store/sqlstore"
	"github.com/countersign/countersign/internal/token"
	"github.com/countersign/countersign/oauth"
)

// Credentials of the clients every test server has, and its users.
const (
	// AgentID and AgentSecret are the default poll-mode client: trade_order and payment_initiation,
	// scopes openid profile email offline_access, refresh tokens.
	AgentID     = "agent"
	AgentSecret = "agent-secret"
	// PingID and PingSecret are a ping-mode client; its notification endpoint is
	// Options.PingEndpoint.
	PingID     = "agent-ping"
	PingSecret = "ping-secret"
	// JWTClientID is a poll-mode client that authenticates with private_key_jwt, with the key
	// Server.ClientKey (key ID JWTClientKeyID).
	JWTClientID    = "agent-jwt"
	JWTClientKeyID = "k1"
	// Alice has an enrolled device (Server.Alice); Bob has none.
	Alice = "alice"
	Bob   = "bob"
	// Audience is an audience the agent may ask tokens for, besides the issuer.
	Audience = "https://api.tradepro.example"
)

// TradeOrderSchema is the JSON Schema of the trade_order authorization_details type the server
// registers (order_type defaults to market).
const TradeOrderSchema = `{
  "type": "object",
  "required": ["symbol", "side", "quantity"],
  "properties": {
    "symbol": {"type": "string", "pattern": "^[A-Z.]{1,10}$"},
    "side": {"enum": ["BUY", "SELL"]},
    "quantity": {"type": "integer", "minimum": 1},
    "order_type": {"enum": ["market", "limit"], "default": "market"},
    "limit_price": {"type": "number"}
  }
}`

// PaymentSchema is the JSON Schema of the payment_initiation type the server registers.
const PaymentSchema = `{
  "type": "object",
  "required": ["instructedAmount", "creditorName"],
  "properties": {
    "instructedAmount": {"type": "object", "required": ["currency", "amount"],
      "properties": {"currency": {"type": "string"}, "amount": {"type": "string"}}},
    "creditorName": {"type": "string"}
  }
}`

// Options change the server a test gets. The zero value is a server on the wall clock with a 1 s
// poll interval.
type Options struct {
	// Authz adjusts the approval service's options (poll interval, long poll cap, limits, ...)
	// after the defaults here are set.
	Authz func(*authz.Options)
	// FakeClock runs the server (and Alice's device) on a settable clock, Server.Clock, that moves
	// only with Server.Advance. Without it the server uses the wall clock.
	FakeClock bool
	// PingEndpoint is the backchannel_client_notification_endpoint of the ping client (PingID).
	// Without it pings go to a closed port and fail.
	PingEndpoint string
	// Synchronous is SQLite's synchronous mode: "normal" (the default, fast) or "full" (what
	// production runs, for benchmarks).
	Synchronous string
}

// Server is a running Countersign server.
type Server struct {
	// HTTP is the httptest server; URL is its base URL without a trailing slash.
	HTTP *httptest.Server
	URL  string
	// Issuer is the issuer identifier exactly as published (ends with "/").
	Issuer  string
	Service *authz.Service
	Store   domain.Store
	Keys    *token.Keyring
	Worker  *notify.Worker
	// Clock is the fake clock with Options.FakeClock, nil otherwise.
	Clock *FakeClock
	// Alice is Alice's enrolled authenticator device.
	Alice *authenticator.Device
	// ClientKey is the private key of the private_key_jwt client (JWTClientID).
	ClientKey *ecdsa.PrivateKey
}

// FakeClock is a settable clock.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// NewFakeClock returns a clock stopped at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{t: t} }

// Advance moves the clock (and nothing else; Server.Advance also runs the sweep).
func (c *FakeClock) Advance(d time.Duration) { c.advance(d) }

func (c *FakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// RSA key generation takes a good fraction of a second; every test server shares a few keys.
var (
	rsaOnce sync.Once
	rsaKeys []*rsa.PrivateKey
	rsaMu   sync.Mutex
	rsaNext int
)

// KeyGenerator generates signing keys for token.Options.Generate: real ES256 keys, and RSA keys from
// a small shared pool, because RSA generation would dominate a test suite's run time.
func KeyGenerator(alg string) (crypto.Signer, error) {
	if alg == token.ES256 {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	rsaOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	rsaMu.Lock()
	defer rsaMu.Unlock()
	rsaNext++
	return rsaKeys[rsaNext%len(rsaKeys)], nil
}

// DetailTypes are the trade_order and payment_initiation types every test server registers, with
// the display templates of the example config.
func DetailTypes(t testing.TB) *authz.DetailTypes {
	t.Helper()
	dt, err := authz.NewDetailTypes([]authz.DetailTypeConfig{
		{Name: "trade_order", Display: "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})", Schema: json.RawMessage(TradeOrderSchema)},
		{Name: "payment_initiation", Display: "Pay {{.instructedAmount.amount}} {{.instructedAmount.currency}} to {{.creditorName}}", Schema: json.RawMessage(PaymentSchema)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// New starts a server that lives until the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx := context.Background()
	mode := opts.Synchronous
	if mode == "" {
		mode = "normal"
	}
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "countersign.db"), sqlstore.SQLiteOptions{Synchronous: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	s := &Server{Store: store}
	var clock domain.Clock = domain.SystemClock{}
	if opts.FakeClock {
		s.Clock = &FakeClock{t: time.Now().UTC().Truncate(time.Second)}
		clock = s.Clock
	}

	// The issuer must be known before the server is built: open the listener first.
	s.HTTP = httptest.NewUnstartedServer(nil)
	s.URL = "http://" + s.HTTP.Listener.Addr().String()
	s.Issuer = s.URL + "/"

	dt := DetailTypes(t)
	o := authz.Options{Issuer: s.Issuer, DetailTypes: dt, PollInterval: time.Second, MaxPendingPerUser: 50, MaxRequestsPerMinute: 1000}
	if opts.Authz != nil {
		opts.Authz(&o)
	}
	s.Keys = token.NewKeyring(store, clock, token.Options{Algorithms: []string{token.ES256, token.RS256}, Generate: KeyGenerator})
	if err := s.Keys.Init(ctx); err != nil {
		t.Fatal(err)
	}
	metrics := server.NewMetrics(prometheus.NewRegistry())
	s.Service = authz.New(store, s.Keys, clock, o, metrics)
	s.Worker = notify.NewWorker(store, clock, map[string]notify.Sender{
		notify.KindCIBAPing: notify.NewCIBACallback(nil),
		notify.KindCIBAPush: notify.NewCIBACallback(nil),
	}, notify.WorkerOptions{MaxAttempts: 3, BaseBackoff: 50 * time.Millisecond, PollEvery: 100 * time.Millisecond}, nil)
	// As in `countersign serve`: a decision that enqueues a callback wakes the worker at once.
	metrics.OnOutbox = s.Worker.Kick
	srv, err := server.New(s.Service, s.Keys, server.Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTP.Config.Handler = srv
	s.HTTP.Start()
	t.Cleanup(s.HTTP.Close)

	workCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Worker.Run(workCtx); close(done) }()
	// Registered after the HTTP server's cleanup, so it runs first: no delivery is in flight when
	// the store closes.
	t.Cleanup(func() { stop(); <-done })

	s.ClientKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ping := opts.PingEndpoint
	if ping == "" {
		ping = "http://127.0.0.1:1/ping"
	}
	s.seed(t, ping)
	s.Alice = s.Enroll(t, Alice)
	return s
}

func (s *Server) seed(t testing.TB, pingEndpoint string) {
	ctx := context.Background()
	scopes := []string{"openid", "profile", "email"}
	both := []string{"trade_order", "payment_initiation"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.ClientKey.PublicKey, KeyID: JWTClientKeyID, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	clients := []domain.Client{
		{ID: AgentID, Name: "DemoTradePro Agent", SecretHash: authz.HashClientSecret(AgentSecret),
			GrantTypes: []string{oauth.GrantTypeCIBA, oauth.GrantTypeRefreshToken}, DeliveryMode: domain.DeliveryPoll,
			AuthorizationDetailsTypes: both, Scopes: append(scopes, oauth.ScopeOfflineAccess), RefreshTokens: true},
		{ID: PingID, Name: "Ping Agent", SecretHash: authz.HashClientSecret(PingSecret), GrantTypes: []string{oauth.GrantTypeCIBA},
			DeliveryMode: domain.DeliveryPing, NotificationEndpoint: pingEndpoint, AuthorizationDetailsTypes: both, Scopes: scopes},
		{ID: JWTClientID, Name: "JWT Agent", AuthMethod: domain.AuthPrivateKeyJWT, JWKS: jwks, GrantTypes: []string{oauth.GrantTypeCIBA},
			DeliveryMode: domain.DeliveryPoll, AuthorizationDetailsTypes: both, Scopes: scopes},
	}
	for _, c := range clients {
		if err := s.Store.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []domain.User{
		{Subject: Alice, Email: "alice@example.com", Name: "Alice Example"},
		{Subject: Bob, Email: "bob@example.com", Name: "Bob NoDevice"},
	} {
		if err := s.Store.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
}

// Now is the server's time.
func (s *Server) Now() time.Time {
	if s.Clock != nil {
		return s.Clock.Now()
	}
	return time.Now().UTC()
}

// Advance moves the fake clock forward and then runs the server's sweep, which expires overdue
// requests (waking long polls and queueing ping callbacks), as the running server does every few
// seconds. It fails the test on a server with the wall clock.
func (s *Server) Advance(t testing.TB, d time.Duration) {
	t.Helper()
	if s.Clock == nil {
		t.Fatal("testserver: Advance needs Options.FakeClock")
	}
	s.Clock.advance(d)
	if err := s.Service.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Enroll adds the user if needed, invites them, and enrolls a terminal-style device for them.
func (s *Server) Enroll(t testing.TB, subject string) *authenticator.Device {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Store.GetUser(ctx, subject); err != nil {
		if err := s.Store.PutUser(ctx, domain.User{Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	link, _, err := s.Service.Invite(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := authenticator.EnrollAt(ctx, s.HTTP.Client(), link, subject+"'s terminal", s.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Clock != nil {
		dev.SetClock(s.Clock.Now)
	}
	return dev
}

// findTimeout bounds how long the helpers below wait for a request to reach the device.
const findTimeout = 10 * time.Second

// WaitPending waits until Alice's device lists a pending request with the binding message, and
// returns it. It polls the device API every few milliseconds, as an authenticator app would.
func (s *Server) WaitPending(t testing.TB, bindingMessage string) authz.RequestView {
	t.Helper()
	return s.WaitPendingOn(t, s.Alice, bindingMessage)
}

// WaitPendingOn is WaitPending for another user's device.
func (s *Server) WaitPendingOn(t testing.TB, dev *authenticator.Device, bindingMessage string) authz.RequestView {
	t.Helper()
	deadline := time.Now().Add(findTimeout)
	for {
		pending, err := dev.Pending(context.Background())
		if err != nil {
			t.Fatalf("testserver: list pending requests: %v", err)
		}
		for _, v := range pending {
			if v.BindingMessage == bindingMessage {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testserver: no pending request %q after %s (%d pending)", bindingMessage, findTimeout, len(pending))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// IsPending reports whether Alice's device lists a pending request with the binding message now.
func (s *Server) IsPending(t testing.TB, bindingMessage string) bool {
	t.Helper()
	pending, err := s.Alice.Pending(context.Background())
	if err != nil {
		t.Fatalf("testserver: list pending requests: %v", err)
	}
	for _, v := range pending {
		if v.BindingMessage == bindingMessage {
			return true
		}
	}
	return false
}

// Approve waits for Alice's pending request with the binding message and approves it with her
// device's signature. It returns the decided request.
func (s *Server) Approve(t testing.TB, bindingMessage string) authz.RequestView {
	t.Helper()
	return s.Decide(t, bindingMessage, domain.DecisionApprove)
}

// Deny is Approve with a denial.
func (s *Server) Deny(t testing.TB, bindingMessage string) authz.RequestView {
	t.Helper()
	return s.Decide(t, bindingMessage, domain.DecisionDeny)
}

// ApproveWithCode approves like Approve, choosing the number-matching code the agent showed.
func (s *Server) ApproveWithCode(t testing.TB, bindingMessage, code string) authz.RequestView {
	t.Helper()
	return s.DecideWith(t, bindingMessage, domain.DecisionApprove, authenticator.DecisionOptions{VerificationCode: code})
}

// Decide waits for Alice's pending request with the binding message and decides it.
func (s *Server) Decide(t testing.TB, bindingMessage string, d domain.Decision) authz.RequestView {
	t.Helper()
	return s.DecideWith(t, bindingMessage, d, authenticator.DecisionOptions{})
}

// DecideWith is Decide with the decision's extras (a verification code, a report).
func (s *Server) DecideWith(t testing.TB, bindingMessage string, d domain.Decision, opts authenticator.DecisionOptions) authz.RequestView {
	t.Helper()
	v := s.WaitPending(t, bindingMessage)
	out, err := s.Alice.DecideWith(context.Background(), v, d, opts)
	if err != nil {
		t.Fatalf("testserver: %s %q: %v", d, bindingMessage, err)
	}
	return out
}

// RotateKeys rotates the server's signing keys once (the published next key starts signing).
func (s *Server) RotateKeys(t testing.TB) {
	t.Helper()
	if _, err := s.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// LongPollsWaiting is how many token requests are being held by the Prefer: wait long poll now.
func (s *Server) LongPollsWaiting() int { return s.Service.Hub().Waiting() }

// WaitLongPoll waits until at least one long poll is held by the server, so that a test measures
// what happens to a waiting poll rather than to one still on its way.
func (s *Server) WaitLongPoll(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(findTimeout)
	for s.LongPollsWaiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("testserver: no long poll arrived")
		}
		time.Sleep(time.Millisecond)
	}
}

// Endpoint returns the absolute URL of a server path such as "/oauth/token".
func (s *Server) Endpoint(path string) string { return s.URL + "/" + strings.TrimPrefix(path, "/") }
