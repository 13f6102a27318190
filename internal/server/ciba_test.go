package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

func TestDiscovery_BothDocumentsAdvertiseCIBAAndRAR(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	oidc := h.get("/.well-known/openid-configuration")
	as := h.get("/.well-known/oauth-authorization-server")
	if oidc.Status != 200 || as.Status != 200 || string(oidc.Body) != string(as.Body) {
		t.Fatalf("discovery: %d %d, equal=%v", oidc.Status, as.Status, string(oidc.Body) == string(as.Body))
	}
	var md oauth.Metadata
	if err := json.Unmarshal(oidc.Body, &md); err != nil {
		t.Fatal(err)
	}
	if md.Issuer != h.issuer() {
		t.Errorf("issuer %q, want exactly %q", md.Issuer, h.issuer())
	}
	base := strings.TrimSuffix(h.issuer(), "/")
	if md.BackchannelAuthenticationEndpoint != base+"/bc-authorize" || md.TokenEndpoint != base+"/oauth/token" {
		t.Errorf("endpoints: %s %s", md.BackchannelAuthenticationEndpoint, md.TokenEndpoint)
	}
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	if !has(md.GrantTypesSupported, oauth.GrantTypeCIBA) {
		t.Error("grant_types_supported lacks the CIBA grant")
	}
	for _, m := range []string{"poll", "ping", "push"} {
		if !has(md.BackchannelTokenDeliveryModesSupported, m) {
			t.Errorf("delivery mode %s not advertised", m)
		}
	}
	if !has(md.AuthorizationDetailsTypesSupported, "trade_order") || !has(md.AuthorizationDetailsTypesSupported, "payment_initiation") {
		t.Errorf("authorization_details_types_supported = %v", md.AuthorizationDetailsTypesSupported)
	}
	if !md.BackchannelUserCodeParameterSupported || len(md.BackchannelAuthenticationRequestSigningAlgValues) == 0 {
		t.Error("user code or request signing not advertised")
	}
}

func TestJWKS_PublishesPublicKeysOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.get("/.well-known/jwks.json")
	if r.Status != 200 {
		t.Fatalf("jwks: %d", r.Status)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`} {
		if strings.Contains(string(r.Body), private+":") {
			t.Fatalf("JWKS contains private member %s", private)
		}
	}
	keys, _ := r.JSON["keys"].([]any)
	if len(keys) < 2 {
		t.Fatalf("want ES256 and RS256 keys, got %d", len(keys))
	}
}

func TestCIBA_7_3_SuccessIs200WithAuthReqIDExpiresInAndInterval(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm())
	if r.Status != http.StatusOK {
		t.Fatalf("status %d %s", r.Status, r.Body)
	}
	if len(r.str("auth_req_id")) < 22 { // 128 bits in base64url
		t.Errorf("auth_req_id %q too short", r.str("auth_req_id"))
	}
	if r.JSON["expires_in"] != float64(300) || r.JSON["interval"] != float64(5) {
		t.Errorf("expires_in %v interval %v", r.JSON["expires_in"], r.JSON["interval"])
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
}

func TestCIBA_7_1_FormWithCharsetIsAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodPost, h.url("/bc-authorize"), strings.NewReader(tradeForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
	req.SetBasicAuth("agent", "agent-secret")
	if r := h.do(req); r.Status != 200 {
		t.Fatalf("status %d %s", r.Status, r.Body)
	}
}

func TestCIBA_7_1_ErrorsOfTheBackchannelEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	long := strings.Repeat("x", 129)
	cases := []struct {
		name   string
		client string
		secret string
		form   url.Values
		status int
		code   string
	}{
		{"NoHint", "agent", "agent-secret", tradeForm("login_hint", ""), 400, oauth.ErrInvalidRequest},
		{"TwoHints", "agent", "agent-secret", tradeForm("login_hint_token", "x.y.z"), 400, oauth.ErrInvalidRequest},
		{"ScopeWithoutOpenID", "agent", "agent-secret", tradeForm("scope", "profile"), 400, oauth.ErrInvalidScope},
		{"ScopeNotAllowed", "other", "other-secret", tradeForm("scope", "openid offline_access"), 400, oauth.ErrInvalidScope},
		{"UnknownUser", "agent", "agent-secret", tradeForm("login_hint", "mallory"), 400, oauth.ErrUnknownUserID},
		{"IssSubForeignIssuer", "agent", "agent-secret", tradeForm("login_hint", `{"format":"iss_sub","iss":"https://evil.example/","sub":"alice"}`), 400, oauth.ErrUnknownUserID},
		{"MalformedJSONHint", "agent", "agent-secret", tradeForm("login_hint", `{"format":`), 400, oauth.ErrInvalidRequest},
		{"UserWithoutDevice", "agent", "agent-secret", tradeForm("login_hint", "bob"), 400, oauth.ErrInvalidRequest},
		{"BindingMessageTooLong", "agent", "agent-secret", tradeForm("binding_message", long), 400, oauth.ErrInvalidBindingMessage},
		{"BindingMessageControlChar", "agent", "agent-secret", tradeForm("binding_message", "Buy\n10"), 400, oauth.ErrInvalidBindingMessage},
		{"BindingMessageBidiOverride", "agent", "agent-secret", tradeForm("binding_message", "Buy \u202e01"), 400, oauth.ErrInvalidBindingMessage},
		{"RequestedExpiryNotANumber", "agent", "agent-secret", tradeForm("requested_expiry", "soon"), 400, oauth.ErrInvalidRequest},
		{"RequestedExpiryZero", "agent", "agent-secret", tradeForm("requested_expiry", "0"), 400, oauth.ErrInvalidRequest},
		{"PingWithoutNotificationToken", "agent-ping", "ping-secret", tradeForm(), 400, oauth.ErrInvalidRequest},
		{"MissingUserCode", "agent", "agent-secret", tradeForm("login_hint", "carol"), 400, oauth.ErrMissingUserCode},
		{"WrongUserCode", "agent", "agent-secret", tradeForm("login_hint", "carol", "user_code", "0000"), 400, oauth.ErrInvalidUserCode},
		{"WrongSecret", "agent", "nope", tradeForm(), 401, oauth.ErrInvalidClient},
		{"UnknownClient", "ghost", "nope", tradeForm(), 401, oauth.ErrInvalidClient},
		{"NoClientAuthentication", "", "", tradeForm(), 401, oauth.ErrInvalidClient},
		{"ClientWithoutCIBAGrant", "api", "api-secret", tradeForm(), 400, oauth.ErrUnauthorizedClient},
		{"UnsignedFromSigningClient", "agent-signed", "signed-secret", tradeForm(), 400, oauth.ErrInvalidRequest},
		{"RequestObjectFromOrdinaryClient", "agent", "agent-secret", tradeForm("request", "a.b.c"), 400, oauth.ErrInvalidRequest},
		{"AudienceNotAllowed", "narrow", "narrow-secret", tradeForm("authorization_details", "", "audience", "https://other.example"), 400, oauth.ErrInvalidTarget},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := h.post("/bc-authorize", tc.client, tc.secret, tc.form)
			expectError(t, r, tc.status, tc.code)
			if tc.code != oauth.ErrInvalidClient && r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("WWW-Authenticate on %s", tc.code)
			}
		})
	}
}

func TestCIBA_13_InvalidClientWithBasicGetsChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.post("/bc-authorize", "agent", "wrong", tradeForm())
	expectError(t, r, 401, oauth.ErrInvalidClient)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}

func TestCIBA_7_1_BindingMessageAcceptsPrintableUnicode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, m := range []string{"Approve payment of $50.00 to ExampleCorp", "Überweisung 50 € an Müller — ok?", "買う 10 株", strings.Repeat("é", 128)} {
		r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("binding_message", m))
		if r.Status != 200 {
			t.Errorf("%q: %d %s", m, r.Status, r.Body)
		}
	}
}

func TestCIBA_7_1_RepeatedParameterIsInvalidRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := tradeForm().Encode() + "&scope=openid"
	req, _ := http.NewRequest(http.MethodPost, h.url("/bc-authorize"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("agent", "agent-secret")
	expectError(t, h.do(req), 400, oauth.ErrInvalidRequest)
}

func TestCIBA_7_1_JSONBodyIsInvalidRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodPost, h.url("/bc-authorize"), strings.NewReader(`{"scope":"openid"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("agent", "agent-secret")
	expectError(t, h.do(req), 400, oauth.ErrInvalidRequest)
}

func TestCIBA_7_1_RequestedExpiryDefaultsAndIsClamped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *authzOptions) { o.MaxExpiry = time.Hour })
	if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("requested_expiry", "120")); r.JSON["expires_in"] != float64(120) {
		t.Errorf("requested 120: %s", r.Body)
	}
	if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("requested_expiry", "999999")); r.JSON["expires_in"] != float64(3600) {
		t.Errorf("requested 999999 with max 1h: %s", r.Body)
	}
}

func TestCIBA_7_1_UserCodeAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("login_hint", "carol", "user_code", "4711"))
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestCIBA_7_1_LoginHintForms(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	iss := h.issuer()
	httpsIss := strings.Replace(iss, "http://", "https://", 1)
	for _, hint := range []string{
		"alice",
		"alice@example.com",
		"ALICE@EXAMPLE.COM",
		`{"format":"iss_sub","iss":"` + iss + `","sub":"alice"}`,
		`{"format":"iss_sub","iss":"` + strings.TrimSuffix(httpsIss, "/") + `","sub":"alice"}`,
		"dave@corp", // a subject that looks like an email
	} {
		r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("login_hint", hint, "binding_message", ""))
		if r.Status != 200 {
			t.Errorf("login_hint %q: %d %s", hint, r.Status, r.Body)
		}
	}
}

func TestCIBA_7_1_IDTokenHintFromAnEarlierFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("first")
	idToken := tok.str("id_token")
	h.clock.Advance(24 * time.Hour) // an expired ID token still names the user
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("login_hint", "", "id_token_hint", idToken))
	if r.Status != 200 {
		t.Fatalf("id_token_hint: %d %s", r.Status, r.Body)
	}
	// Another client's ID token is refused, and so is an access token posing as one.
	other := h.post("/bc-authorize", "other", "other-secret", tradeForm("login_hint", "", "id_token_hint", idToken))
	expectError(t, other, 400, oauth.ErrInvalidRequest)
	at := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("login_hint", "", "id_token_hint", tok.str("access_token")))
	expectError(t, at, 400, oauth.ErrInvalidRequest)
}

func TestCIBA_7_1_LoginHintToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := h.clock.Now()
	good := h.signJWT(map[string]any{"sub": "alice", "exp": now.Add(time.Minute).Unix()})
	byEmail := h.signJWT(map[string]any{"email": "alice@example.com", "exp": now.Add(time.Minute).Unix()})
	expired := h.signJWT(map[string]any{"sub": "alice", "exp": now.Add(-time.Hour).Unix()})
	form := func(tok string) url.Values {
		f := tradeForm("login_hint", "")
		f.Set("login_hint_token", tok)
		f.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		f.Set("client_assertion", h.assertion(h.issuer(), randomString(), now.Add(time.Minute)))
		return f
	}
	for _, tok := range []string{good, byEmail} {
		if r := h.post("/bc-authorize", "", "", form(tok)); r.Status != 200 {
			t.Errorf("login_hint_token: %d %s", r.Status, r.Body)
		}
	}
	expectError(t, h.post("/bc-authorize", "", "", form(expired)), 400, oauth.ErrExpiredLoginHintToken)
	forged := good[:len(good)-4] + "AAAA"
	expectError(t, h.post("/bc-authorize", "", "", form(forged)), 400, oauth.ErrInvalidRequest)
}

func TestCIBA_7_1_1_SignedRequestObject(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := h.clock.Now()
	obj := func(jti string, exp time.Time) string {
		return h.signJWT(map[string]any{
			"iss": "agent-signed", "aud": h.issuer(), "iat": now.Unix(), "exp": exp.Unix(), "jti": jti,
			"scope": "openid", "login_hint": "alice", "binding_message": "Signed buy", "requested_expiry": 120,
			"authorization_details": []any{map[string]any{"type": "trade_order", "symbol": "AAPL", "side": "SELL", "quantity": 3}},
		})
	}
	r := h.post("/bc-authorize", "agent-signed", "signed-secret", url.Values{"request": {obj("j1", now.Add(time.Minute))}})
	if r.Status != 200 || r.JSON["expires_in"] != float64(120) {
		t.Fatalf("signed request: %d %s", r.Status, r.Body)
	}
	// Parameters outside the object are ignored: the user sees the signed content.
	r = h.post("/bc-authorize", "agent-signed", "signed-secret", url.Values{"request": {obj("j2", now.Add(time.Minute))}, "binding_message": {"Outside"}})
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	v := h.decide(h.alice, "Signed buy", domain.DecisionApprove)
	if v.Rendered[0].Text != "SELL 3 AAPL (market)" {
		t.Errorf("rendered %q", v.Rendered[0].Text)
	}
	expectError(t, h.post("/bc-authorize", "agent-signed", "signed-secret", url.Values{"request": {obj("j1", now.Add(time.Minute))}}), 400, oauth.ErrInvalidRequest)
	expectError(t, h.post("/bc-authorize", "agent-signed", "signed-secret", url.Values{"request": {obj("j3", now.Add(-time.Hour))}}), 400, oauth.ErrInvalidRequest)
}

func TestRFC9396_AuthorizationDetailsValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cases := []struct {
		name, client, secret, details, wantInDescription string
	}{
		{"UnknownType", "agent", "agent-secret", `[{"type":"wire_transfer","amount":5}]`, `authorization_details[0].type: unknown type "wire_transfer"`},
		{"TypeNotAllowedForClient", "other", "other-secret", `[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"5"},"creditorName":"X"}]`, `may not request type "payment_initiation"`},
		{"SchemaFailureNamesElementAndField", "agent", "agent-secret", `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10},{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":0}]`, `authorization_details[1].quantity`},
		{"NestedField", "agent", "agent-secret", `[{"type":"payment_initiation","instructedAmount":{"currency":"EUR"},"creditorName":"X"}]`, `authorization_details[0].instructedAmount`},
		{"NotAnArray", "agent", "agent-secret", `{"type":"trade_order"}`, `JSON array`},
		{"ElementNotObject", "agent", "agent-secret", `["trade_order"]`, `authorization_details[0] must be an object`},
		{"MissingType", "agent", "agent-secret", `[{"symbol":"NVDA"}]`, `authorization_details[0].type is required`},
		{"CommonFieldWrongShape", "agent", "agent-secret", `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":1,"actions":"buy"}]`, `authorization_details[0].actions`},
		{"BadJSON", "agent", "agent-secret", `[{"type":`, `JSON array`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := h.post("/bc-authorize", tc.client, tc.secret, tradeForm("authorization_details", tc.details))
			expectError(t, r, 400, oauth.ErrInvalidAuthorizationDetails)
			if !strings.Contains(r.str("error_description"), tc.wantInDescription) {
				t.Errorf("description %q lacks %q", r.str("error_description"), tc.wantInDescription)
			}
		})
	}
}

func TestRFC9396_7_TokenCarriesApprovedDetailsWithDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("Buy with defaults")
	details, _ := tok.JSON["authorization_details"].([]any)
	if len(details) != 1 {
		t.Fatalf("token response authorization_details = %v", tok.JSON["authorization_details"])
	}
	d := details[0].(map[string]any)
	if d["order_type"] != "market" || d["symbol"] != "NVDA" || d["quantity"] != float64(10) {
		t.Errorf("granted detail %v", d)
	}
	at := jwtPayload(t, tok.str("access_token"))
	atDetails, _ := json.Marshal(at["authorization_details"])
	respDetails, _ := json.Marshal(tok.JSON["authorization_details"])
	if string(atDetails) != string(respDetails) {
		t.Errorf("access token details %s differ from response %s", atDetails, respDetails)
	}
}

func TestCIBA_11_PendingThenSlowDownGrowsInterval(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm())
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrAuthorizationPending)
	h.clock.Advance(time.Second)
	r := h.poll("agent", "agent-secret", id)
	expectError(t, r, 400, oauth.ErrSlowDown)
	if r.Header.Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q, want 10 (5 s interval + 5 s)", r.Header.Get("Retry-After"))
	}
	if r.Header.Get("WWW-Authenticate") != "" {
		t.Error("WWW-Authenticate on slow_down breaks oauth4webapi")
	}
	// The old interval is no longer enough.
	h.clock.Advance(6 * time.Second)
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrSlowDown)
	h.clock.Advance(16 * time.Second)
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrAuthorizationPending)
}

func TestCIBA_11_ApprovedRequestIsRedeemedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm("scope", "openid profile email"))
	v := h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	r := h.poll("agent", "agent-secret", id)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if r.str("token_type") != "Bearer" || r.JSON["expires_in"] == nil || r.str("scope") != "openid profile email" {
		t.Errorf("token response %s", r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Error("token response is cacheable")
	}
	hdr := jwtHeader(t, r.str("access_token"))
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" {
		t.Errorf("access token header %v", hdr)
	}
	at := jwtPayload(t, r.str("access_token"))
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} {
		if at[claim] == nil {
			t.Errorf("access token lacks %s", claim)
		}
	}
	if at["sub"] != "alice" || at["client_id"] != "agent" || at["iss"] != h.issuer() {
		t.Errorf("access token claims %v", at)
	}
	approval, _ := at["approval"].(map[string]any)
	if approval["request_id"] != v.ID || approval["device_id"] != h.alice.ID() || approval["shown_sha256"] != v.ShownSHA256 {
		t.Errorf("approval claim %v does not reference the receipt", approval)
	}
	id1 := jwtPayload(t, r.str("id_token"))
	if id1["aud"] != "agent" || id1["iss"] != h.issuer() || id1["sub"] != "alice" || id1["email"] != "alice@example.com" || id1["at_hash"] == nil {
		t.Errorf("id token %v", id1)
	}
	if jwtHeader(t, r.str("id_token"))["alg"] != "RS256" {
		t.Error("ID tokens default to RS256")
	}
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrInvalidGrant)
}

func TestCIBA_11_ConcurrentPollsRedeemOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm())
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- h.poll("agent", "agent-secret", id).Status
		}()
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for s := range statuses {
		if s == 200 {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d polls got tokens, want exactly 1", ok)
	}
}

func TestCIBA_11_DeniedIsAccessDenied(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm())
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionDeny)
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrAccessDenied)
}

func TestCIBA_11_ExpiredIsExpiredToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm("requested_expiry", "60"))
	h.clock.Advance(61 * time.Second)
	expectError(t, h.poll("agent", "agent-secret", id), 400, oauth.ErrExpiredToken)
	// A device can no longer approve it, nor see it as pending.
	pending, err := h.alice.Pending(context.Background())
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending after expiry: %v %v", pending, err)
	}
}

func TestCIBA_11_ExpiredIsAccessDeniedForAuth0CompatibleClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("auth0", "auth0-secret", tradeForm("authorization_details", "", "requested_expiry", "60"))
	h.clock.Advance(2 * time.Minute)
	expectError(t, h.poll("auth0", "auth0-secret", id), 400, oauth.ErrAccessDenied)
}

func TestCIBA_11_AnotherClientsAuthReqIDIsInvalidGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.start("agent", "agent-secret", tradeForm())
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	expectError(t, h.poll("other", "other-secret", id), 400, oauth.ErrInvalidGrant)
	expectError(t, h.poll("agent", "agent-secret", "not-a-real-id"), 400, oauth.ErrInvalidGrant)
	// The rightful client still gets its tokens.
	if r := h.poll("agent", "agent-secret", id); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestTokenEndpoint_GrantTypeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	expectError(t, h.post("/oauth/token", "agent", "agent-secret", url.Values{}), 400, oauth.ErrInvalidRequest)
	expectError(t, h.post("/oauth/token", "agent", "agent-secret", url.Values{"grant_type": {"password"}}), 400, oauth.ErrUnsupportedGrantType)
	expectError(t, h.post("/oauth/token", "agent", "agent-secret", url.Values{"grant_type": {oauth.GrantTypeCIBA}}), 400, oauth.ErrInvalidRequest)
	expectError(t, h.poll("agent-push", "push-secret", "x"), 400, oauth.ErrUnauthorizedClient)
	expectError(t, h.poll("api", "api-secret", "x"), 400, oauth.ErrUnauthorizedClient)
}

func TestClientAuthentication_Methods(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := h.clock.Now()
	t.Run("ClientSecretPost", func(t *testing.T) {
		f := tradeForm()
		f.Set("client_id", "agent")
		f.Set("client_secret", "agent-secret")
		if r := h.post("/bc-authorize", "", "", f); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("PostRefusedForBasicOnlyClient", func(t *testing.T) {
		f := tradeForm("authorization_details", "")
		f.Set("client_id", "basic-only")
		f.Set("client_secret", "basic-secret")
		expectError(t, h.post("/bc-authorize", "", "", f), 401, oauth.ErrInvalidClient)
	})
	t.Run("TwoMethodsAtOnce", func(t *testing.T) {
		f := tradeForm()
		f.Set("client_secret", "agent-secret")
		expectError(t, h.post("/bc-authorize", "agent", "agent-secret", f), 400, oauth.ErrInvalidRequest)
	})
	t.Run("PrivateKeyJWT", func(t *testing.T) {
		f := tradeForm()
		f.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		jti := randomString()
		f.Set("client_assertion", h.assertion(h.url("/oauth/token"), jti, now.Add(time.Minute)))
		if r := h.post("/bc-authorize", "", "", f); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		// The same assertion again is a replay.
		expectError(t, h.post("/bc-authorize", "", "", f), 401, oauth.ErrInvalidClient)
	})
	t.Run("PrivateKeyJWTWrongAudience", func(t *testing.T) {
		f := tradeForm()
		f.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		f.Set("client_assertion", h.assertion("https://elsewhere.example/", randomString(), now.Add(time.Minute)))
		expectError(t, h.post("/bc-authorize", "", "", f), 401, oauth.ErrInvalidClient)
	})
	t.Run("PrivateKeyJWTExpired", func(t *testing.T) {
		f := tradeForm()
		f.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		f.Set("client_assertion", h.assertion(h.issuer(), randomString(), now.Add(-time.Hour)))
		expectError(t, h.post("/bc-authorize", "", "", f), 401, oauth.ErrInvalidClient)
	})
	t.Run("SecretForPrivateKeyJWTClient", func(t *testing.T) {
		expectError(t, h.post("/bc-authorize", "agent-jwt", "anything", tradeForm()), 401, oauth.ErrInvalidClient)
	})
}

func TestCIBA_13_AbuseLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t) // at most 5 pending per user and 10 per minute
	for i := range 5 {
		if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("binding_message", "n"+string(rune('a'+i)))); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm())
	expectError(t, r, 403, oauth.ErrAccessDenied)
	if !strings.Contains(r.str("error_description"), "pending") {
		t.Errorf("description %q should say why", r.str("error_description"))
	}
	// Deciding frees a slot; the per-minute cap then stops the flood.
	for i := range 5 {
		h.decide(h.alice, "n"+string(rune('a'+i)), domain.DecisionDeny)
	}
	for i := range 5 {
		if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("binding_message", "m"+string(rune('a'+i)))); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
		h.decide(h.alice, "m"+string(rune('a'+i)), domain.DecisionDeny)
	}
	r = h.post("/bc-authorize", "agent", "agent-secret", tradeForm())
	expectError(t, r, 403, oauth.ErrAccessDenied)
	if r.Header.Get("Retry-After") == "" {
		t.Error("rate limit answer without Retry-After")
	}
	h.clock.Advance(61 * time.Second)
	if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm()); r.Status != 200 {
		t.Fatalf("after a minute: %d %s", r.Status, r.Body)
	}
}

func TestClientAuthentication_PrivateKeyJWTWithJWKSURI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var mu sync.Mutex
	served := jwksOf(t, &h.clientEC.PublicKey, "k1")
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(served)
	}))
	t.Cleanup(jwks.Close)
	ctx := context.Background()
	c, err := h.store.GetClient(ctx, "agent-jwt")
	if err != nil {
		t.Fatal(err)
	}
	c.JWKS, c.JWKSURI = nil, jwks.URL
	if err := h.store.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	form := func() url.Values {
		f := tradeForm()
		f.Set("client_assertion_type", oauth.ClientAssertionJWTBearer)
		f.Set("client_assertion", h.assertion(h.issuer(), randomString(), h.clock.Now().Add(time.Minute)))
		return f
	}
	if r := h.post("/bc-authorize", "", "", form()); r.Status != 200 {
		t.Fatalf("jwks_uri client: %d %s", r.Status, r.Body)
	}
	// The client rotates its key: the new kid is fetched, but not more often than every 30 s.
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mu.Lock()
	served = jwksOf(t, &newKey.PublicKey, "k2")
	mu.Unlock()
	h.clientEC, h.clientKID = newKey, "k2"
	expectError(t, h.post("/bc-authorize", "", "", form()), 401, oauth.ErrInvalidClient)
	h.clock.Advance(31 * time.Second)
	if r := h.post("/bc-authorize", "", "", form()); r.Status != 200 {
		t.Fatalf("after the client's key rotation: %d %s", r.Status, r.Body)
	}
}
