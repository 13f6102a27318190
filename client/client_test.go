package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/testserver"
	"github.com/countersign/countersign/oauth"
)

// tradeOrder is the caller's view of a trade_order detail.
type tradeOrder struct {
	Type      string `json:"type"`
	Symbol    string `json:"symbol"`
	Side      string `json:"side"`
	Quantity  int    `json:"quantity"`
	OrderType string `json:"order_type,omitempty"`
}

func buy(n int, symbol string) tradeOrder {
	return tradeOrder{Type: "trade_order", Symbol: symbol, Side: "BUY", Quantity: n}
}

// newClient returns a client of the default poll agent, with cfg's non-zero fields on top.
func newClient(t testing.TB, ts *testserver.Server, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Issuer = ts.Issuer
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = testserver.AgentID, testserver.AgentSecret
	}
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tradeRequest(binding string) client.Request {
	return client.Request{User: testserver.Alice, BindingMessage: binding, AuthorizationDetails: []any{buy(10, "NVDA")}}
}

type result struct {
	tok *client.Token
	err error
	at  time.Time
}

// requestAsync runs RequestApproval in a goroutine and delivers its result, stamped with the time
// it returned.
func requestAsync(ctx context.Context, c *client.Client, r client.Request) <-chan result {
	out := make(chan result, 1)
	go func() {
		tok, err := c.RequestApproval(ctx, r)
		out <- result{tok, err, time.Now()}
	}()
	return out
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("RequestApproval did not return")
		return result{}
	}
}

func checkApproved(t *testing.T, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("RequestApproval: %v", r.err)
	}
	if r.tok.AccessToken == "" || r.tok.TokenType != oauth.TokenTypeBearer || r.tok.Expiry.IsZero() {
		t.Fatalf("token %+v", r.tok.TokenResponse)
	}
	orders, err := client.DetailsOf[tradeOrder](r.tok, "trade_order")
	if err != nil || len(orders) != 1 {
		t.Fatalf("DetailsOf: %v %v", orders, err)
	}
	// The server fills in schema defaults; the token carries exactly what the user saw.
	if o := orders[0]; o.Symbol != "NVDA" || o.Quantity != 10 || o.OrderType != "market" {
		t.Fatalf("approved detail %+v", o)
	}
}

func TestRequestApproval_ApprovedWithLongPoll(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	if c.Metadata().LongPollMaxWait <= 0 {
		t.Fatal("the server should advertise countersign_long_poll_max_wait")
	}
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	ts.Approve(t, "Buy 10 NVDA")
	checkApproved(t, await(t, ch))
}

func TestRequestApproval_ApprovedByPolling(t *testing.T) {
	t.Parallel()
	// The wall clock: plain polling waits the real interval (1 s here) between polls.
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{DisableLongPoll: true})
	start := time.Now()
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	ts.Approve(t, "Buy 10 NVDA")
	r := await(t, ch)
	checkApproved(t, r)
	if ts.LongPollsWaiting() != 0 {
		t.Fatal("a long poll is held although long polling is disabled")
	}
	// The first poll waits one interval: CIBA clients must not poll faster.
	if d := r.at.Sub(start); d < time.Second {
		t.Fatalf("approved after %s, before one poll interval", d)
	}
}

func TestRequestApproval_PrivateKeyJWT(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{ClientID: testserver.JWTClientID, PrivateKey: ts.ClientKey, KeyID: testserver.JWTClientKeyID})
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	ts.Approve(t, "Buy 10 NVDA")
	checkApproved(t, await(t, ch))
}

func TestRequestApproval_Denied(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	ch := requestAsync(context.Background(), c, tradeRequest("Sell 1000 NVDA"))
	ts.Deny(t, "Sell 1000 NVDA")
	r := await(t, ch)
	var oe *oauth.Error
	if !errors.Is(r.err, client.ErrDenied) || !errors.As(r.err, &oe) || oe.Code != oauth.ErrAccessDenied {
		t.Fatalf("got %v, want ErrDenied carrying access_denied", r.err)
	}
	if errors.Is(r.err, client.ErrExpired) || r.tok != nil {
		t.Fatalf("denial also reads as %v / %v", r.err, r.tok)
	}
}

func TestRequestApproval_Expired(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{FakeClock: true})
	c := newClient(t, ts, client.Config{})
	req := tradeRequest("Buy 10 NVDA")
	req.RequestedExpiry = time.Minute
	ch := requestAsync(context.Background(), c, req)
	ts.WaitPending(t, "Buy 10 NVDA")
	// Past the expiry on the server's clock; its sweep expires the request and wakes the long poll
	// (or the next poll finds it expired).
	ts.Advance(t, 61*time.Second)
	r := await(t, ch)
	var oe *oauth.Error
	if !errors.Is(r.err, client.ErrExpired) || !errors.As(r.err, &oe) || oe.Code != oauth.ErrExpiredToken {
		t.Fatalf("got %v, want ErrExpired carrying expired_token", r.err)
	}
}

func TestRequestApproval_NoAuthenticator(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	req := tradeRequest("Buy 10 NVDA")
	req.User = testserver.Bob
	_, err := c.RequestApproval(context.Background(), req)
	var oe *oauth.Error
	if !errors.Is(err, client.ErrNoAuthenticator) || !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidRequest || oe.Reason != oauth.ReasonNoAuthenticator {
		t.Fatalf("got %v, want ErrNoAuthenticator carrying invalid_request", err)
	}
}

func TestRequestApproval_OtherErrorsAreOAuthErrors(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	req := tradeRequest("Buy 10 NVDA")
	req.AuthorizationDetails = []any{map[string]any{"type": "wire_transfer", "amount": 1}}
	_, err := c.RequestApproval(context.Background(), req)
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidAuthorizationDetails {
		t.Fatalf("got %v, want invalid_authorization_details", err)
	}
	for _, sentinel := range []error{client.ErrDenied, client.ErrExpired, client.ErrNoAuthenticator, client.ErrPending} {
		if errors.Is(err, sentinel) {
			t.Errorf("invalid_authorization_details reads as %v", sentinel)
		}
	}

	bad, err := client.New(context.Background(), client.Config{Issuer: ts.Issuer, ClientID: testserver.AgentID, ClientSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.RequestApproval(context.Background(), tradeRequest("Buy 1 NVDA"))
	if !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidClient {
		t.Fatalf("wrong secret: got %v, want invalid_client", err)
	}
}

func TestRequestApproval_CancelledContextCancelsOnServer(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := requestAsync(ctx, c, tradeRequest("Buy 10 NVDA"))
	ts.WaitPending(t, "Buy 10 NVDA")
	cancel()
	r := await(t, ch)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", r.err)
	}
	// RequestApproval returns after the revocation: the device no longer shows the request.
	if ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("the request is still pending on the user's device")
	}
	history, err := ts.Alice.History(context.Background(), 10)
	if err != nil || len(history) == 0 || history[0].Status != "cancelled" {
		t.Fatalf("history %+v %v, want the request cancelled", history, err)
	}
}

func TestRequestApproval_DeadlineCancelsOnServer(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{DisableLongPoll: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.RequestApproval(ctx, tradeRequest("Buy 10 NVDA"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("the request is still pending after the deadline")
	}
}

func TestPending_PollTooFastGetsSlowDown(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{FakeClock: true})
	c := newClient(t, ts, client.Config{})
	ctx := context.Background()
	p, err := c.Start(ctx, tradeRequest("Buy 10 NVDA"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Interval() != time.Second {
		t.Fatalf("interval %s, want the server's 1s", p.Interval())
	}
	// The first poll is never too soon.
	_, err = p.Poll(ctx)
	var oe *oauth.Error
	if !errors.Is(err, client.ErrPending) || !errors.As(err, &oe) || oe.Code != oauth.ErrAuthorizationPending {
		t.Fatalf("first poll: %v, want authorization_pending", err)
	}
	// The second, at once (the server's clock has not moved), is too soon.
	before := time.Now()
	_, err = p.Poll(ctx)
	if !errors.Is(err, client.ErrPending) || !errors.As(err, &oe) || oe.Code != oauth.ErrSlowDown {
		t.Fatalf("second poll: %v, want slow_down", err)
	}
	if oe.RetryAfter != 6 {
		t.Errorf("Retry-After %d, want 6 (1 s + 5 s)", oe.RetryAfter)
	}
	if p.Interval() != 6*time.Second {
		t.Errorf("interval after slow_down %s, want 6s", p.Interval())
	}
	if next := p.NextPoll(); next.Before(before.Add(6 * time.Second)) {
		t.Errorf("next poll %s from now, want at least 6s", time.Until(next))
	}
}

func TestLongPoll_ReturnsWithin100msOfTheDecision(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	v := ts.WaitPending(t, "Buy 10 NVDA")
	ts.WaitLongPoll(t) // the poll is held by the server now
	if _, err := ts.Alice.Decide(context.Background(), v, "approve"); err != nil {
		t.Fatal(err)
	}
	decided := time.Now()
	r := await(t, ch)
	checkApproved(t, r)
	// The token may even arrive before the device has read its own answer (negative latency).
	if latency := r.at.Sub(decided); latency > 100*time.Millisecond {
		t.Fatalf("token %s after the decision returned, want < 100ms", latency)
	}
}

func TestPing_PingHandlerWakesTheWaiter(t *testing.T) {
	t.Parallel()
	ping := client.NewPingHandler()
	receiver := httptest.NewServer(ping)
	t.Cleanup(receiver.Close)
	ts := testserver.New(t, testserver.Options{PingEndpoint: receiver.URL + "/ciba"})
	c := newClient(t, ts, client.Config{ClientID: testserver.PingID, ClientSecret: testserver.PingSecret, Ping: ping})
	start := time.Now()
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	ts.Approve(t, "Buy 10 NVDA")
	r := await(t, ch)
	checkApproved(t, r)
	if ts.LongPollsWaiting() != 0 {
		t.Fatal("ping mode should not long poll")
	}
	// Without the ping the first poll would come after 30 s (the fallback).
	if d := r.at.Sub(start); d > 10*time.Second {
		t.Fatalf("approved after %s: the ping did not wake the waiter", d)
	}
}

func TestPing_NonBlockingNotified(t *testing.T) {
	t.Parallel()
	ping := client.NewPingHandler()
	receiver := httptest.NewServer(ping)
	t.Cleanup(receiver.Close)
	ts := testserver.New(t, testserver.Options{PingEndpoint: receiver.URL})
	c := newClient(t, ts, client.Config{ClientID: testserver.PingID, ClientSecret: testserver.PingSecret, Ping: ping})
	ctx := context.Background()
	p, err := c.Start(ctx, tradeRequest("Buy 10 NVDA"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Deny(t, "Buy 10 NVDA")
	select {
	case <-p.Notified():
	case <-time.After(10 * time.Second):
		t.Fatal("no ping notification")
	}
	if _, err := p.Poll(ctx); !errors.Is(err, client.ErrDenied) {
		t.Fatalf("poll after the ping: %v, want ErrDenied", err)
	}
}

func TestPingHandler_RejectsWhatItDoesNotWaitFor(t *testing.T) {
	t.Parallel()
	h := client.NewPingHandler()
	for _, tc := range []struct {
		name, method, auth, body string
		status                   int
	}{
		{"GET", http.MethodGet, "Bearer x", `{"auth_req_id":"a"}`, http.StatusMethodNotAllowed},
		{"NoToken", http.MethodPost, "", `{"auth_req_id":"a"}`, http.StatusUnauthorized},
		{"UnknownToken", http.MethodPost, "Bearer nobody-waits", `{"auth_req_id":"a"}`, http.StatusUnauthorized},
		{"NotJSON", http.MethodPost, "Bearer x", `auth_req_id=a`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "/ping", strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestPending_ResumeInANewClient(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	p, err := newClient(t, ts, client.Config{}).Start(ctx, tradeRequest("Buy 10 NVDA"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}

	// Another process: a new client, the saved JSON.
	other := newClient(t, ts, client.Config{})
	resumed, err := other.Resume(saved)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.AuthReqID() != p.AuthReqID() || resumed.BindingMessage() != "Buy 10 NVDA" || resumed.User() != testserver.Alice ||
		!resumed.ExpiresAt().Equal(p.ExpiresAt()) {
		t.Fatalf("resumed %s, want %s", mustJSON(t, resumed), saved)
	}
	if _, err := resumed.Poll(ctx); !errors.Is(err, client.ErrPending) {
		t.Fatalf("poll before the decision: %v", err)
	}
	ts.Approve(t, "Buy 10 NVDA")
	tok, err := resumed.Wait(ctx)
	checkApproved(t, result{tok: tok, err: err})

	// A Pending resumes only with its own client.
	jwtClient := newClient(t, ts, client.Config{ClientID: testserver.JWTClientID, PrivateKey: ts.ClientKey, KeyID: testserver.JWTClientKeyID})
	if _, err := jwtClient.Resume(saved); err == nil {
		t.Fatal("another client resumed the request")
	}
}

func TestPending_CancelWithdrawsTheRequest(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	c := newClient(t, ts, client.Config{})
	p, err := c.Start(ctx, tradeRequest("Buy 10 NVDA"))
	if err != nil {
		t.Fatal(err)
	}
	ts.WaitPending(t, "Buy 10 NVDA")
	if err := p.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("still pending after Cancel")
	}
	var oe *oauth.Error
	if _, err := p.Poll(ctx); !errors.As(err, &oe) || oe.Code != oauth.ErrInvalidGrant {
		t.Fatalf("poll after cancel: %v, want invalid_grant", err)
	}
}

func TestRequest_ScopeAlwaysHasOpenID(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	req := tradeRequest("Buy 10 NVDA")
	req.Scope = "offline_access"
	req.Audience = []string{testserver.Audience}
	ch := requestAsync(context.Background(), c, req)
	v := ts.Approve(t, "Buy 10 NVDA")
	r := await(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if strings.Join(v.Scope, " ") != "openid offline_access" || r.tok.RefreshToken == "" || r.tok.IDToken == "" {
		t.Fatalf("scope %v, refresh token %q", v.Scope, r.tok.RefreshToken)
	}
}

func TestNew_Discovery(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	// A missing trailing slash is forgiven; the server's spelling is used from then on.
	c, err := client.New(context.Background(), client.Config{Issuer: ts.URL, ClientID: "agent", ClientSecret: "agent-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata().Issuer != ts.Issuer {
		t.Fatalf("issuer %q", c.Metadata().Issuer)
	}
	for name, cfg := range map[string]client.Config{
		"NoIssuer":      {ClientID: "a", ClientSecret: "s"},
		"NoCredentials": {Issuer: ts.Issuer, ClientID: "a"},
		"WrongIssuer":   {Issuer: ts.URL + "/tenant/", ClientID: "a", ClientSecret: "s"},
	} {
		if _, err := client.New(context.Background(), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestToken_JSONRoundTrip(t *testing.T) {
	t.Parallel()
	raw := `{"access_token":"at","token_type":"Bearer","expires_in":600,"authorization_details":[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}],"expires_at":"2030-01-02T03:04:05Z"}`
	var tok client.Token
	if err := json.Unmarshal([]byte(raw), &tok); err != nil {
		t.Fatal(err)
	}
	if len(tok.Details) != 1 || tok.Details[0].Type != "trade_order" || tok.Expiry.Year() != 2030 {
		t.Fatalf("%+v", tok)
	}
	again, err := json.Marshal(&tok)
	if err != nil {
		t.Fatal(err)
	}
	var back client.Token
	if err := json.Unmarshal(again, &back); err != nil || back.AccessToken != "at" || len(back.Details) != 1 || !back.Expiry.Equal(tok.Expiry) {
		t.Fatalf("round trip %s: %+v %v", again, back, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequestApproval_NumberMatching(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{Authz: func(o *authz.Options) {
		o.RequireNumberMatching = map[string]bool{testserver.AgentID: true}
	}})
	c := newClient(t, ts, client.Config{})
	codes := make(chan string, 1)
	req := tradeRequest("Buy 10 NVDA")
	req.OnPending = func(p *client.Pending) {
		// What an agent shows next to "check your phone"; it survives serialization.
		var saved struct {
			Code string `json:"verification_code"`
		}
		raw, _ := json.Marshal(p)
		_ = json.Unmarshal(raw, &saved)
		if saved.Code != p.VerificationCode() {
			t.Errorf("serialized code %q, want %q", saved.Code, p.VerificationCode())
		}
		codes <- p.VerificationCode()
	}
	ch := requestAsync(context.Background(), c, req)
	code := <-codes
	if len(code) != 2 {
		t.Fatalf("verification code %q, want two digits", code)
	}
	ts.ApproveWithCode(t, "Buy 10 NVDA", code)
	checkApproved(t, await(t, ch))
}

func TestRequestApproval_ReportedClientIsDenied(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	c := newClient(t, ts, client.Config{})
	ch := requestAsync(context.Background(), c, tradeRequest("Buy 10 NVDA"))
	ts.DecideWith(t, "Buy 10 NVDA", "deny", authenticator.DecisionOptions{Report: true})
	if r := await(t, ch); !errors.Is(r.err, client.ErrDenied) {
		t.Fatalf("reported request: %v, want ErrDenied", r.err)
	}
	// While the report holds, new requests are refused at once: as final as a denial.
	_, err := c.RequestApproval(context.Background(), tradeRequest("Buy 5 NVDA"))
	var oe *oauth.Error
	if !errors.Is(err, client.ErrDenied) || !errors.As(err, &oe) || oe.RetryAfter <= 0 {
		t.Fatalf("during the hold: %v, want ErrDenied with Retry-After", err)
	}
}
