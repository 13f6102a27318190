package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
)

func apiStatus(err error) int {
	var e *authenticator.APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestDeviceAPI_EnrollmentCodeIsOneTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	link, _, err := h.svc.Invite(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authenticator.Enroll(context.Background(), h.srv.Client(), link, "first"); err != nil {
		t.Fatal(err)
	}
	_, err = authenticator.Enroll(context.Background(), h.srv.Client(), link, "second")
	if apiStatus(err) != http.StatusConflict {
		t.Fatalf("second use of a code: %v", err)
	}
	// bob can now be asked.
	if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("login_hint", "bob")); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestDeviceAPI_EnrollmentCodeExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	link, _, err := h.svc.Invite(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(25 * time.Hour)
	_, err = authenticator.EnrollAt(context.Background(), h.srv.Client(), link, "late", h.clock.Now())
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired code: %v", err)
	}
}

func TestDeviceAPI_InviteUnknownUserFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if _, _, err := h.svc.Invite(context.Background(), "nobody"); err == nil {
		t.Fatal("invited an unknown user")
	}
}

func TestDeviceAPI_ListShowsEverythingToDecideOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start("agent", "agent-secret", tradeForm("authorization_details",
		`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10,"limit_price":123.45,"order_type":"limit","locations":["https://api.tradepro.example"]}]`))
	pending, err := h.alice.Pending(context.Background())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v %v", pending, err)
	}
	v := pending[0]
	if v.Client.Name != "DemoTradePro Agent" || v.BindingMessage != "Buy 10 NVDA" || v.ExpiresIn != 300 {
		t.Errorf("view %+v", v)
	}
	if v.Rendered[0].Text != "BUY 10 NVDA (limit)" {
		t.Errorf("rendered %q", v.Rendered[0].Text)
	}
	fields := map[string]string{}
	for _, f := range v.Rendered[0].Fields {
		fields[f.Path] = f.Value
	}
	// Fields the template does not mention are shown too.
	for path, want := range map[string]string{"limit_price": "123.45", "locations[0]": "https://api.tradepro.example", "quantity": "10", "type": "trade_order"} {
		if fields[path] != want {
			t.Errorf("field %s = %q, want %q (all: %v)", path, fields[path], want, fields)
		}
	}
	// Other users see nothing of it.
	carol := h.enroll("carol")
	if p, _ := carol.Pending(context.Background()); len(p) != 0 {
		t.Fatalf("carol sees alice's requests: %v", p)
	}
	if _, err := carol.Get(context.Background(), v.ID); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("carol reads alice's request: %v", err)
	}
}

func TestDeviceAPI_DecisionMustCoverWhatWasShown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start("agent", "agent-secret", tradeForm())
	v := pendingOf(t, h.alice)[0]
	// A device that was shown something else (here: another quantity) cannot approve this request.
	other := v.Shown
	other.AuthorizationDetails = json.RawMessage(`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":1,"order_type":"market"}]`)
	signed, err := h.alice.SignDecisionOver(v.ID, other, domain.DecisionApprove)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.alice.SendDecision(context.Background(), v.ID, signed); apiStatus(err) != http.StatusConflict {
		t.Fatalf("approval over other content: %v", err)
	}
	if _, err := h.alice.Decide(context.Background(), v, domain.DecisionApprove); err != nil {
		t.Fatal(err)
	}
	// Granted once.
	_, err = h.alice.Decide(context.Background(), v, domain.DecisionDeny)
	if apiStatus(err) != http.StatusConflict {
		t.Fatalf("second decision: %v", err)
	}
}

func TestAuthenticator_RefusesToSignWhatItDoesNotDisplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start("agent", "agent-secret", tradeForm("authorization_details",
		`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10,"limit_price":1.5}]`))
	v := pendingOf(t, h.alice)[0]
	tamper := map[string]func(*authz.RequestView){
		"HiddenField":     func(v *authz.RequestView) { v.Rendered[0].Fields = v.Rendered[0].Fields[1:] },
		"OtherClientName": func(v *authz.RequestView) { v.Client.Name = "Your Bank" },
		"OtherMessage":    func(v *authz.RequestView) { v.BindingMessage = "Buy 1 NVDA" },
		"OtherContent": func(v *authz.RequestView) {
			v.Shown.AuthorizationDetails = json.RawMessage(`[{"type":"trade_order","quantity":1000}]`)
		},
		"ServerHashDiffers": func(v *authz.RequestView) { v.ShownSHA256 = "AAAA" },
		"NoServerHash":      func(v *authz.RequestView) { v.ShownSHA256 = "" },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			c := v
			c.Rendered = []authz.RenderedDetail{{Type: v.Rendered[0].Type, Text: v.Rendered[0].Text, Fields: append([]authz.Field(nil), v.Rendered[0].Fields...)}}
			f(&c)
			if _, err := h.alice.SignDecision(c, domain.DecisionApprove); !errors.Is(err, authenticator.ErrShownMismatch) {
				t.Fatalf("signed a tampered view: %v", err)
			}
		})
	}
	if _, err := h.alice.SignDecision(v, domain.DecisionApprove); err != nil {
		t.Fatalf("untampered view: %v", err)
	}
}

func TestDeviceAPI_OnlyTheUsersDeviceDecides(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start("agent", "agent-secret", tradeForm())
	v := pendingOf(t, h.alice)[0]
	carol := h.enroll("carol")
	if _, err := carol.Decide(context.Background(), v, domain.DecisionApprove); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("carol approved alice's request: %v", err)
	}
}

func TestDeviceAPI_SignaturesAreBoundToTheirPurpose(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start("agent", "agent-secret", tradeForm())
	v := pendingOf(t, h.alice)[0]
	signed := signDecision(t, h.alice, v)

	// A decision for one request cannot decide another.
	body := `{"signed_decision":"` + signed + `"}`
	req, _ := http.NewRequest(http.MethodPost, h.url("/device/v1/requests/other-id/decision"), strings.NewReader(body))
	if r := h.do(req); r.Status != http.StatusBadRequest {
		t.Fatalf("decision replayed on another request: %d %s", r.Status, r.Body)
	}
	// A decision is not a request signature.
	r := h.get("/device/v1/requests", "Authorization", "Device "+signed)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("decision JWS used as Authorization: %d", r.Status)
	}
	// A key that is not enrolled cannot sign anything.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: stranger},
		(&jose.SignerOptions{}).WithType(authz.TypDeviceAuth).WithHeader("kid", h.alice.ID()))
	payload, _ := json.Marshal(authz.DeviceAuthClaims{Audience: h.issuer(), Method: "GET", URL: h.url("/device/v1/requests"), IssuedAt: h.clock.Now().Unix()})
	jws, _ := s.Sign(payload)
	compact, _ := jws.CompactSerialize()
	if r := h.get("/device/v1/requests", "Authorization", "Device "+compact); r.Status != http.StatusUnauthorized {
		t.Fatalf("stranger's key accepted: %d", r.Status)
	}
	if r := h.get("/device/v1/requests"); r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no Authorization: %d", r.Status)
	}
}

func TestDeviceAPI_StaleSignaturesAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stale := h.enroll("carol")
	stale.SetClock(func() time.Time { return h.clock.Now().Add(-10 * time.Minute) })
	if _, err := stale.Pending(context.Background()); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("10-minute-old signature: %v", err)
	}
}

func TestDeviceAPI_RemovedDeviceIsLockedOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	second := h.enroll("alice")
	// Remove alice's first device from her second one, through the API.
	if err := second.Remove(context.Background(), h.alice.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.alice.Pending(context.Background()); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("removed device still works: %v", err)
	}
	events, err := h.store.ListAudit(context.Background(), domain.AuditFilter{Type: domain.AuditDeviceRevoked})
	if err != nil || len(events) != 1 || events[0].DeviceID != h.alice.ID() {
		t.Fatalf("audit %v %v", events, err)
	}
}

func pendingOf(t *testing.T, dev *authenticator.Device) []authz.RequestView {
	t.Helper()
	p, err := dev.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func signDecision(t *testing.T, dev *authenticator.Device, v authz.RequestView) string {
	t.Helper()
	s, err := dev.SignDecision(v, domain.DecisionApprove)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAudit_EveryStateChangeIsRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.approvedToken("audit me")
	events, err := h.store.ListAudit(context.Background(), domain.AuditFilter{Subject: "alice", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Type] = true
	}
	for _, typ := range []string{domain.AuditDeviceEnrolled, domain.AuditRequestCreated, domain.AuditRequestApproved, domain.AuditRequestRedeemed} {
		if !seen[typ] {
			t.Errorf("no %s event (have %v)", typ, seen)
		}
	}
}

func TestReceipt_VerifiesAndDetectsTampering(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.approvedToken("receipt")
	approval := jwtPayload(t, tok.str("access_token"))["approval"].(map[string]any)
	id := approval["request_id"].(string)
	ctx := context.Background()
	v, err := h.svc.Receipt(ctx, id)
	if err != nil || !v.Verified || v.ShownSHA256 != approval["shown_sha256"] {
		t.Fatalf("receipt %+v %v", v, err)
	}
	// Someone with database access rewrites what was approved: the receipt no longer verifies.
	if _, err := h.store.UpdateRequest(ctx, id, func(r *domain.Request) error {
		r.AuthorizationDetails = json.RawMessage(`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":1000,"order_type":"market"}]`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := h.svc.Receipt(ctx, id); err != nil || v.Verified || v.Problem == "" {
		t.Fatalf("tampered receipt verified: %+v %v", v, err)
	}
}
