package resource_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/testserver"
	"github.com/countersign/countersign/resource"
)

// TradeOrder is the API's view of a trade_order detail.
type TradeOrder struct {
	Symbol   string `json:"symbol"`
	Side     string `json:"side"`
	Quantity int    `json:"quantity"`
}

// tradeAPI is a DemoTradePro-like API: POST /orders?symbol=S&side=BUY&quantity=N places an order
// if the token approves exactly that order.
func tradeAPI(v *resource.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /orders", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("quantity"))
		order, err := resource.Require(r, "trade_order", func(d TradeOrder) bool {
			return d.Symbol == q.Get("symbol") && d.Side == q.Get("side") && d.Quantity == n
		})
		if err != nil {
			resource.WriteError(w, err)
			return
		}
		tok, _ := resource.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"placed": order, "for": tok.Subject, "by": tok.ClientID})
	})))
	return mux
}

// countingTransport counts the key set fetches.
type countingTransport struct{ jwks atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		c.jwks.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type fixture struct {
	ts      *testserver.Server
	agent   *client.Client
	api     *httptest.Server
	fetches *countingTransport
}

func newFixture(t *testing.T, audience string) *fixture {
	t.Helper()
	ts := testserver.New(t, testserver.Options{FakeClock: true})
	f := &fixture{ts: ts, fetches: &countingTransport{}}
	var err error
	f.agent, err = client.New(context.Background(), client.Config{Issuer: ts.Issuer, ClientID: testserver.AgentID, ClientSecret: testserver.AgentSecret})
	if err != nil {
		t.Fatal(err)
	}
	v, err := resource.New(resource.Config{Issuer: ts.Issuer, Audience: audience, Now: ts.Now, HTTPClient: &http.Client{Transport: f.fetches}})
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(tradeAPI(v))
	t.Cleanup(f.api.Close)
	return f
}

// token runs an approval of "BUY 10 NVDA" for the trading API and returns the access token.
func (f *fixture) token(t *testing.T, binding string) string {
	t.Helper()
	done := make(chan struct{})
	var tok *client.Token
	var err error
	go func() {
		defer close(done)
		tok, err = f.agent.RequestApproval(context.Background(), client.Request{
			User: testserver.Alice, BindingMessage: binding, Audience: []string{testserver.Audience},
			AuthorizationDetails: []any{map[string]any{"type": "trade_order", "symbol": "NVDA", "side": "BUY", "quantity": 10}},
		})
	}()
	f.ts.Approve(t, binding)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

type answer struct {
	status    int
	challenge string
	body      map[string]any
}

func (f *fixture) order(t *testing.T, token, query string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.api.URL+"/orders?"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	_ = json.NewDecoder(resp.Body).Decode(&a.body)
	return a
}

const nvda10 = "symbol=NVDA&side=BUY&quantity=10"

func expectRejected(t *testing.T, a answer, status int, code, descContains string) {
	t.Helper()
	if a.status != status || a.body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", a.status, a.body, status, code)
	}
	if !strings.Contains(a.challenge, `error="`+code+`"`) {
		t.Fatalf("WWW-Authenticate %q lacks error=%q", a.challenge, code)
	}
	if desc, _ := a.body["error_description"].(string); !strings.Contains(desc, descContains) {
		t.Fatalf("error_description %q lacks %q", desc, descContains)
	}
}

func TestMiddleware_ValidTokenReachesTheHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	a := f.order(t, f.token(t, "Buy 10 NVDA"), nvda10)
	if a.status != http.StatusOK || a.body["for"] != testserver.Alice || a.body["by"] != testserver.AgentID {
		t.Fatalf("got %d %v", a.status, a.body)
	}
	placed, _ := a.body["placed"].(map[string]any)
	if placed["symbol"] != "NVDA" || placed["quantity"] != 10.0 {
		t.Fatalf("placed %v", placed)
	}
}

func TestMiddleware_MissingToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	a := f.order(t, "", nvda10)
	if a.status != http.StatusUnauthorized || a.challenge != "Bearer" {
		t.Fatalf("got %d %q", a.status, a.challenge)
	}
}

func TestMiddleware_WrongAudience(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "https://payments.example")
	expectRejected(t, f.order(t, f.token(t, "Buy 10 NVDA"), nvda10), http.StatusUnauthorized, "invalid_token", "not for this API")
}

func TestMiddleware_Expired(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	tok := f.token(t, "Buy 10 NVDA")
	f.ts.Advance(t, 11*time.Minute) // access tokens live 10 minutes; the leeway is 30 s
	expectRejected(t, f.order(t, tok, nvda10), http.StatusUnauthorized, "invalid_token", "expired")
}

func TestMiddleware_UnknownKidThenRotatedKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	if a := f.order(t, f.token(t, "Buy 10 NVDA"), nvda10); a.status != http.StatusOK {
		t.Fatalf("before rotation: %d %v", a.status, a.body)
	}
	if n := f.fetches.jwks.Load(); n != 1 {
		t.Fatalf("%d key fetches, want 1", n)
	}
	// Countersign publishes the next key one rotation before it signs, so a verifier that fetched
	// before one rotation already knows the new key. Two rotations make it sign with a key the
	// verifier has never seen.
	f.ts.RotateKeys(t)
	f.ts.RotateKeys(t)
	rotated := f.token(t, "Buy 10 NVDA again")

	// Within MinRefresh of the last fetch the unknown key ID does not cause another fetch.
	expectRejected(t, f.order(t, rotated, nvda10), http.StatusUnauthorized, "invalid_token", "unknown key")
	if n := f.fetches.jwks.Load(); n != 1 {
		t.Fatalf("%d key fetches within MinRefresh, want 1", n)
	}
	// Later, it does, and the token verifies.
	f.ts.Advance(t, resource.DefaultMinRefresh+time.Second)
	if a := f.order(t, rotated, nvda10); a.status != http.StatusOK {
		t.Fatalf("after rotation: %d %v", a.status, a.body)
	}
	if n := f.fetches.jwks.Load(); n != 2 {
		t.Fatalf("%d key fetches, want 2", n)
	}
}

func TestMiddleware_DetailDoesNotMatchTheOperation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	// Approved: BUY 10 NVDA. Attempted: BUY 100 NVDA.
	expectRejected(t, f.order(t, f.token(t, "Buy 10 NVDA"), "symbol=NVDA&side=BUY&quantity=100"),
		http.StatusForbidden, "insufficient_scope", "trade_order")
}

func TestMiddleware_ReplayedToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testserver.Audience)
	tok := f.token(t, "Buy 10 NVDA")
	if a := f.order(t, tok, nvda10); a.status != http.StatusOK {
		t.Fatalf("first use: %d %v", a.status, a.body)
	}
	expectRejected(t, f.order(t, tok, nvda10), http.StatusUnauthorized, "invalid_token", "already used")
}
