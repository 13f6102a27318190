package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/store/sqlstore"
	"github.com/countersign/countersign/oauth"
)

// serve runs one request through the server's handler in-process (no sockets), as the benchmarks
// measure the server, not the loopback network.
func (h *harness) serve(method, path, basicID, basicSecret string, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, h.url(path), strings.NewReader(body))
	if body != "" && !strings.HasPrefix(path, "/device/") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if basicID != "" {
		req.SetBasicAuth(basicID, basicSecret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	return rec
}

func benchLimits(o *authzOptions) {
	o.MaxPendingPerUser = 1 << 20
	o.MaxRequestsPerMinute = 1 << 30
}

// BenchmarkFlow measures complete approvals in one process (every request goes through the server's
// handler, without sockets) with SQLite at synchronous=full:
// POST /bc-authorize, the device lists its pending requests (signed GET), signs and posts its
// decision, and POST /oauth/token returns the tokens. Each parallel worker is its own user with its
// own device. Sub-benchmarks choose the ID token algorithm: ES256 (what the demo client registers)
// and RS256 (the default for clients that register none; RSA signing costs about 1 ms of CPU).
func BenchmarkFlow(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run("id_token="+alg, func(b *testing.B) { benchmarkFlow(b, alg) })
	}
}

func benchmarkFlow(b *testing.B, idTokenAlg string) {
	h := newHarnessSync(b, "full", benchLimits)
	ctx := context.Background()
	c, err := h.store.GetClient(ctx, "agent")
	if err != nil {
		b.Fatal(err)
	}
	c.IDTokenSigningAlg = idTokenAlg
	if err := h.store.PutClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	const workers = 128
	devices := make([]*authenticator.Device, workers)
	for i := range devices {
		sub := fmt.Sprintf("bench-%d", i)
		if err := h.store.PutUser(ctx, domain.User{Subject: sub}); err != nil {
			b.Fatal(err)
		}
		devices[i] = h.enrollWith(sub, h.inProcess())
	}
	var next atomic.Int64
	var seq atomic.Int64
	b.SetParallelism(16)
	stats := h.store.(*sqlstore.Store).WriterStats
	before := stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % workers
		dev, sub := devices[i], fmt.Sprintf("bench-%d", i)
		for pb.Next() {
			msg := fmt.Sprintf("flow %d", seq.Add(1))
			form := url.Values{"scope": {"openid"}, "login_hint": {sub}, "binding_message": {msg},
				"authorization_details": {`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`}}.Encode()
			rec := h.serve(http.MethodPost, "/bc-authorize", "agent", "agent-secret", form)
			if rec.Code != 200 {
				b.Fatalf("bc-authorize: %d %s", rec.Code, rec.Body)
			}
			var bc oauth.BackchannelResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &bc)

			pending, err := dev.Pending(ctx) // the device API, signed, through the real handler
			if err != nil {
				b.Fatal(err)
			}
			var view authz.RequestView
			for _, v := range pending {
				if v.BindingMessage == msg {
					view = v
				}
			}
			if _, err := dev.Decide(ctx, view, domain.DecisionApprove); err != nil {
				b.Fatal(err)
			}
			tok := h.serve(http.MethodPost, "/oauth/token", "agent", "agent-secret",
				url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {bc.AuthReqID}}.Encode())
			if tok.Code != 200 {
				b.Fatalf("token: %d %s", tok.Code, tok.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	after := stats()
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Units-before.Units)/float64(commits), "writes/commit")
	}
}

// BenchmarkPendingPoll measures POST /oauth/token for requests still pending: client authentication,
// one indexed read, the in-memory poll-rate check, and the authorization_pending answer. Polls cycle
// over many requests while a fake clock moves on, so that each request is polled no faster than its
// interval (else the answer would be slow_down).
func BenchmarkPendingPoll(b *testing.B) {
	h := newHarnessSync(b, "full", benchLimits)
	const requests = 4096
	ids := make([]string, requests)
	for i := range ids {
		ids[i] = h.start("agent", "agent-secret", tradeForm("requested_expiry", "259200", "binding_message", fmt.Sprintf("poll %d", i)))
	}
	bodies := make([]string, requests)
	for i, id := range ids {
		bodies[i] = url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {id}}.Encode()
	}
	var n atomic.Int64
	var unexpected atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if i%requests == 0 {
				h.clock.Advance(6 * time.Second) // every request becomes due again
			}
			rec := h.serve(http.MethodPost, "/oauth/token", "agent", "agent-secret", bodies[i%requests])
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), oauth.ErrAuthorizationPending) {
				unexpected.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
	if u := unexpected.Load(); u > int64(b.N)/100 {
		b.Fatalf("%d of %d polls were not authorization_pending", u, b.N)
	}
}
