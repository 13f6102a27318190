package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/store/sqlstore"
	"github.com/countersign/countersign/oauth"
)

func TestCIBA_10_2_PingNotifiesThenClientPolls(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent-ping", "ping-secret", tradeForm("client_notification_token", "ping-bearer-123"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	if _, err := h.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.callback.received()
	if len(got) != 1 || got[0].Path != "/ping" || got[0].Authorization != "Bearer ping-bearer-123" || got[0].Body["auth_req_id"] != id {
		t.Fatalf("ping callbacks %+v", got)
	}
	if len(got[0].Body) != 1 {
		t.Errorf("ping body carries more than auth_req_id: %v", got[0].Body)
	}
	if r := h.poll("agent-ping", "ping-secret", id); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestCIBA_10_2_PingIsRetriedUntilDelivered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.callback.fail = 1
	h.start("agent-ping", "ping-secret", tradeForm("client_notification_token", "tok"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionDeny)
	ctx := context.Background()
	if _, err := h.worker.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(h.callback.received()); n != 0 {
		t.Fatalf("first attempt should fail, got %d deliveries", n)
	}
	// Not due yet: nothing is sent before the backoff passes.
	if n, _ := h.worker.RunOnce(ctx); n != 0 {
		t.Fatalf("retried before the backoff: %d", n)
	}
	h.clock.Advance(time.Hour)
	if _, err := h.worker.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(h.callback.received()); n != 1 {
		t.Fatalf("deliveries after retry: %d", n)
	}
}

func TestCIBA_10_3_PushDeliversTokensWithAuthReqIDClaims(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent-push", "push-secret", tradeForm("client_notification_token", "push-bearer"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	if _, err := h.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.callback.received()
	if len(got) != 1 || got[0].Authorization != "Bearer push-bearer" {
		t.Fatalf("push callbacks %+v", got)
	}
	body := got[0].Body
	if body["auth_req_id"] != id || body["token_type"] != "Bearer" || body["access_token"] == nil || body["authorization_details"] == nil {
		t.Fatalf("push body %v", body)
	}
	idt := jwtPayload(t, body["id_token"].(string))
	if idt[oauth.ClaimAuthReqID] != id || idt["at_hash"] == nil {
		t.Errorf("push ID token lacks auth_req_id or at_hash: %v", idt)
	}
	// Pushed tokens are live: introspection sees them.
	r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {body["access_token"].(string)}})
	if r.JSON["active"] != true {
		t.Errorf("pushed token inactive: %s", r.Body)
	}
}

func TestCIBA_12_PushDeliversDenialAsError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent-push", "push-secret", tradeForm("client_notification_token", "push-bearer"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionDeny)
	if _, err := h.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.callback.received()
	if len(got) != 1 || got[0].Body["error"] != oauth.ErrAccessDenied || got[0].Body["auth_req_id"] != id {
		t.Fatalf("push callbacks %+v", got)
	}
}

func TestCIBA_12_PushDeliversExpiryAsError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent-push", "push-secret", tradeForm("client_notification_token", "push-bearer", "requested_expiry", "30"))
	h.clock.Advance(31 * time.Second)
	if err := h.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.callback.received()
	if len(got) != 1 || got[0].Body["error"] != oauth.ErrExpiredToken || got[0].Body["auth_req_id"] != id {
		t.Fatalf("push callbacks %+v", got)
	}
}

func TestLongPoll_PreferWaitReturnsWhenDecided(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm())
	done := make(chan response, 1)
	go func() { done <- h.poll("agent", "agent-secret", id, "Prefer", "wait=20") }()
	// Approve once the poll is waiting: the hub has a subscriber.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		select {
		case r := <-done:
			t.Fatalf("long poll answered before the decision: %d %s", r.Status, r.Body)
		default:
		}
		if h.svc.Hub().Waiting() > 0 {
			break
		}
	}
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	select {
	case r := <-done:
		if r.Status != 200 || r.Header.Get("Preference-Applied") != "wait=20" {
			t.Fatalf("long poll: %d %s %v", r.Status, r.Body, r.Header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return after the decision")
	}
}

func TestRefreshTokens_RotateAndReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm("scope", "openid offline_access"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	first := h.poll("agent", "agent-secret", id)
	rt := first.str("refresh_token")
	if rt == "" {
		t.Fatalf("no refresh token: %s", first.Body)
	}
	refresh := func(tok string) response {
		return h.post("/oauth/token", "agent", "agent-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}})
	}
	second := refresh(rt)
	if second.Status != 200 || second.str("refresh_token") == "" || second.str("refresh_token") == rt {
		t.Fatalf("refresh: %d %s", second.Status, second.Body)
	}
	if jwtPayload(t, second.str("access_token"))["authorization_details"] == nil {
		t.Error("refreshed access token lost the approved details")
	}
	expectError(t, refresh(rt), 400, oauth.ErrInvalidGrant) // reuse
	expectError(t, refresh(second.str("refresh_token")), 400, oauth.ErrInvalidGrant)
	// Another client cannot use it, and a client without refresh tokens gets none.
	expectError(t, h.post("/oauth/token", "other", "other-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}), 400, oauth.ErrUnauthorizedClient)
	if tok := h.approvedToken("no offline"); tok.str("refresh_token") != "" {
		t.Error("refresh token issued without offline_access")
	}
}

func TestRFC7662_IntrospectionShowsDetailsAndReceipt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("Introspect me")
	r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {tok.str("access_token")}})
	if r.Status != 200 || r.JSON["active"] != true || r.JSON["sub"] != "alice" || r.JSON["client_id"] != "agent" {
		t.Fatalf("introspection %d %s", r.Status, r.Body)
	}
	if r.JSON["authorization_details"] == nil || r.JSON["approval"] == nil {
		t.Errorf("introspection lacks details or approval: %s", r.Body)
	}
	for _, bad := range []string{"garbage", tok.str("access_token")[:20] + "x.y.z", tok.str("id_token")} {
		if r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {bad}}); r.Status != 200 || r.JSON["active"] != false || len(r.JSON) != 1 {
			t.Errorf("introspecting %.20s: %s", bad, r.Body)
		}
	}
	expectError(t, h.post("/oauth/introspect", "", "", url.Values{"token": {tok.str("access_token")}}), 401, oauth.ErrInvalidClient)
	h.clock.Advance(11 * time.Minute)
	if r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {tok.str("access_token")}}); r.JSON["active"] != false {
		t.Errorf("expired token active: %s", r.Body)
	}
}

func TestRFC7009_RevokeAccessTokenAndCancelRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("Revoke me")
	at := tok.str("access_token")
	// Another client's revocation is ignored, silently.
	if r := h.post("/oauth/revoke", "other", "other-secret", url.Values{"token": {at}}); r.Status != 200 {
		t.Fatalf("revoke by other: %d", r.Status)
	}
	if r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {at}}); r.JSON["active"] != true {
		t.Fatal("another client revoked the token")
	}
	if r := h.post("/oauth/revoke", "agent", "agent-secret", url.Values{"token": {at}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := h.post("/oauth/introspect", "api", "api-secret", url.Values{"token": {at}}); r.JSON["active"] != false {
		t.Fatal("revoked token still active")
	}
	if r := h.get("/userinfo", "Authorization", "Bearer "+at); r.Status != 401 {
		t.Fatalf("userinfo with revoked token: %d", r.Status)
	}

	// Cancelling a pending request.
	id := h.start("agent", "agent-secret", tradeForm("binding_message", "cancel me"))
	if r := h.post("/oauth/revoke", "other", "other-secret", url.Values{"token": {id}, "token_type_hint": {"auth_req_id"}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if p, _ := h.alice.Pending(context.Background()); len(p) != 1 {
		t.Fatalf("another client cancelled the request: %d pending", len(p))
	}
	if r := h.post("/oauth/revoke", "agent", "agent-secret", url.Values{"token": {id}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if p, _ := h.alice.Pending(context.Background()); len(p) != 0 {
		t.Fatalf("cancelled request still pending on the device: %d", len(p))
	}
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrInvalidGrant)
	expectError(t, h.post("/oauth/revoke", "agent", "agent-secret", url.Values{}), 400, oauth.ErrInvalidRequest)
}

func TestUserinfo_BearerTokenAndErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("who am i")
	r := h.get("/userinfo", "Authorization", "Bearer "+tok.str("access_token"))
	if r.Status != 200 || r.JSON["sub"] != "alice" {
		t.Fatalf("userinfo: %d %s", r.Status, r.Body)
	}
	r = h.get("/userinfo")
	if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("userinfo without token: %d %v", r.Status, r.Header)
	}
	if r := h.get("/userinfo", "Authorization", "Bearer "+tok.str("id_token")); r.Status != 401 {
		t.Fatalf("userinfo with an ID token: %d", r.Status)
	}
}

func TestOperations_HealthAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if r := h.get("/healthz"); r.Status != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("healthz %d %s", r.Status, r.Body)
	}
	h.approvedToken("metrics")
	r := h.get("/metrics")
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	for _, want := range []string{`countersign_http_requests_total{code="200",route="POST /oauth/token"}`, `countersign_backchannel_requests_total{state="redeemed"} 1`} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRouting_UnknownPathAndWrongMethod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if r := h.get("/nope"); r.Status != http.StatusNotFound {
		t.Errorf("unknown path: %d", r.Status)
	}
	if r := h.get("/oauth/token"); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint: %d", r.Status)
	}
}

func TestCIBA_11_PendingPollDoesNotWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm("requested_expiry", "86400"))
	writes := func() int64 { return h.store.(*sqlstore.Store).WriterStats().Units }
	before := writes()
	for range 10 {
		expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrAuthorizationPending)
		expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrSlowDown) // too soon: still no write
		h.clock.Advance(10 * time.Minute)                                           // beyond any grown interval
	}
	if after := writes(); after != before {
		t.Fatalf("pending polls wrote %d transactions to the database", after-before)
	}
}

func TestRefreshTokens_ConcurrentUseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm("scope", "openid offline_access"))
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	rt := h.poll("agent", "agent-secret", id).str("refresh_token")
	var wg sync.WaitGroup
	results := make(chan response, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- h.post("/oauth/token", "agent", "agent-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		}()
	}
	wg.Wait()
	close(results)
	var winners []string
	for r := range results {
		if r.Status == 200 {
			winners = append(winners, r.str("refresh_token"))
		} else {
			expectError(t, r, 400, oauth.ErrInvalidGrant)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d exchanges of one refresh token succeeded", len(winners))
	}
	// The losers revealed a second holder: the winner's new token is revoked with the family.
	r := h.post("/oauth/token", "agent", "agent-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {winners[0]}})
	expectError(t, r, 400, oauth.ErrInvalidGrant)
}
