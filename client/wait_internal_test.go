package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/testserver"
	"github.com/countersign/countersign/oauth"
)

// recordWaits replaces the client's sleep with one that records the delays and returns at once,
// and, when the server runs on a fake clock, moves that clock by the delay: the client "waits" in
// the server's time without the test waiting in real time.
func recordWaits(t *testing.T, c *Client, ts *testserver.Server) func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	c.wait = func(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		if ts != nil && d > 0 {
			ts.Advance(t, d)
		}
		return ctx.Err()
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

func TestWait_HonoursSlowDown(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{FakeClock: true})
	c, err := New(context.Background(), Config{Issuer: ts.Issuer, ClientID: testserver.AgentID, ClientSecret: testserver.AgentSecret, DisableLongPoll: true})
	if err != nil {
		t.Fatal(err)
	}
	waits := recordWaits(t, c, ts)
	ctx := context.Background()
	p, err := c.Start(ctx, Request{User: testserver.Alice, BindingMessage: "Buy 10 NVDA",
		AuthorizationDetails: []any{map[string]any{"type": "trade_order", "symbol": "NVDA", "side": "BUY", "quantity": 10}}})
	if err != nil {
		t.Fatal(err)
	}
	// Two polls at once: the second is too soon and the interval grows from 1 s to 6 s.
	_, _ = p.Poll(ctx)
	_, err = p.Poll(ctx)
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.ErrSlowDown {
		t.Fatalf("got %v, want slow_down", err)
	}

	// Wait keeps to the new interval: it waits the whole 6 s before it polls again, even though
	// the user has decided meanwhile.
	ts.Approve(t, "Buy 10 NVDA")
	if _, err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if w := waits(); len(w) != 1 || w[0] < 5900*time.Millisecond {
		t.Fatalf("waits %v, want one of 6 s", w)
	}
}

// fakeAS is a scripted authorization server: discovery, and a token endpoint that answers from a
// list.
type fakeAS struct {
	srv     *httptest.Server
	answers []func(w http.ResponseWriter)
	polls   atomic.Int32
	prefer  atomic.Value
}

func newFakeAS(t *testing.T, longPoll int, answers ...func(w http.ResponseWriter)) *fakeAS {
	f := &fakeAS{answers: answers}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss := f.srv.URL + "/"
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"` + iss + `","token_endpoint":"` + iss + `oauth/token","backchannel_authentication_endpoint":"` + iss + `bc-authorize",` +
			`"revocation_endpoint":"` + iss + `oauth/revoke","countersign_long_poll_max_wait":` + strconv.Itoa(longPoll) + `}`))
	})
	mux.HandleFunc("POST /bc-authorize", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"auth_req_id":"req-1","expires_in":120,"interval":2}`))
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		n := int(f.polls.Add(1)) - 1
		f.prefer.Store(r.Header.Get("Prefer"))
		f.answers[min(n, len(f.answers)-1)](w)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func answer(status int, body string, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if strings.HasPrefix(body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

const tokenBody = `{"access_token":"at","token_type":"Bearer","expires_in":60}`

func TestWait_HonoursRetryAfterAndRidesOutServerErrors(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t, 0,
		answer(400, `{"error":"slow_down","error_description":"slow"}`, "Retry-After", "20"),
		answer(503, `<html>down for maintenance</html>`),
		answer(400, `{"error":"authorization_pending"}`),
		answer(200, tokenBody),
	)
	c, err := New(context.Background(), Config{Issuer: f.srv.URL + "/", ClientID: "a", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	waits := recordWaits(t, c, nil)
	tok, err := c.RequestApproval(context.Background(), Request{User: "alice"})
	if err != nil || tok.AccessToken != "at" {
		t.Fatalf("got %v %v", tok, err)
	}
	w := waits()
	// interval 2 s; slow_down with Retry-After 20 makes it 20 s; the 503 is retried after 20 s too.
	if len(w) != 4 || w[0] < 1900*time.Millisecond || w[1] < 19*time.Second || w[2] < 19*time.Second {
		t.Fatalf("waits %v", w)
	}
}

func TestWait_GivesUpAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t, 0, answer(502, `bad gateway`))
	c, err := New(context.Background(), Config{Issuer: f.srv.URL + "/", ClientID: "a", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	recordWaits(t, c, nil)
	_, err = c.RequestApproval(context.Background(), Request{User: "alice"})
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 502 {
		t.Fatalf("got %v, want the 502", err)
	}
	if n := f.polls.Load(); n != maxTransientFailures+1 {
		t.Fatalf("%d polls, want %d", n, maxTransientFailures+1)
	}
}

func TestWait_LongPollAsksToBeHeld(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t, 9, answer(400, `{"error":"authorization_pending"}`), answer(200, tokenBody))
	c, err := New(context.Background(), Config{Issuer: f.srv.URL + "/", ClientID: "a", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	waits := recordWaits(t, c, nil)
	if _, err := c.RequestApproval(context.Background(), Request{User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got := f.prefer.Load(); got != "wait=9" {
		t.Fatalf("Prefer %q, want wait=9", got)
	}
	// The first long poll goes at once; after a held poll comes back pending, the interval applies.
	if w := waits(); len(w) != 2 || w[0] != 0 || w[1] < 1900*time.Millisecond {
		t.Fatalf("waits %v", w)
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"7"}}
	err := parseError(400, h, []byte(`{"error":"invalid_request","error_description":"no device","reason":"no_authenticator"}`))
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != "invalid_request" || oe.Reason != "no_authenticator" || oe.RetryAfter != 7 || oe.Description != "no device" {
		t.Fatalf("%#v", err)
	}
	if !errors.Is(startError(err), ErrNoAuthenticator) {
		t.Fatal("not ErrNoAuthenticator")
	}
	err = parseError(502, http.Header{}, []byte("<html>bad gateway</html>"))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 502 || !strings.Contains(he.Body, "bad gateway") {
		t.Fatalf("%#v", err)
	}
}
