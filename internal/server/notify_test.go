package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/oauth"
)

const hookSecret = "0123456789abcdef0123"

// hookReceiver is a team webhook endpoint that checks every delivery's signature.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	ids  map[string]int
	fail bool
}

func newHookReceiver(t *testing.T, clock *fakeClock) *hookReceiver {
	hr := &hookReceiver{ids: map[string]int{}}
	hr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhookSignature(hookSecret, r.Header.Get(notify.HeaderWebhookSignature), body, clock.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		hr.mu.Lock()
		defer hr.mu.Unlock()
		if hr.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		hr.got = append(hr.got, m)
		hr.ids[r.Header.Get(notify.HeaderWebhookDelivery)]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hr.srv.Close)
	return hr
}

func (hr *hookReceiver) received() []map[string]any {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return append([]map[string]any(nil), hr.got...)
}

// failingChannel always fails, to show fallback.
type failingChannel struct{ calls int }

func (f *failingChannel) Name() string { return "email" }
func (f *failingChannel) Send(context.Context, notify.Recipient, notify.Notification) error {
	f.calls++
	return io.ErrUnexpectedEOF
}

// notifyingHarness is a harness whose users are notified by email (which fails) then webhook.
func notifyingHarness(t *testing.T, opts ...harnessOption) (*harness, *hookReceiver, *notify.Worker, *failingChannel) {
	h := newHarness(t, append([]harnessOption{func(o *authzOptions) {
		o.DefaultChannels = []string{"email", "webhook"}
		o.Channels = map[string]bool{"email": true, "webhook": true, "webpush": true, "operator_webhook": true}
		o.ReminderBefore = 30 * time.Minute
		o.ReportHold = time.Hour
	}}, opts...)...)
	hr := newHookReceiver(t, h.clock)
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: hr.srv.URL, Secret: hookSecret, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	failing := &failingChannel{}
	w := notify.NewWorker(h.store, h.clock, map[string]notify.Sender{
		authz.OutboxNotify: h.svc.NotificationSender(map[string]notify.Channel{"email": failing, "webhook": hook}),
		authz.OutboxReport: h.svc.ReportSender(hook),
	}, notify.WorkerOptions{}, nil)
	return h, hr, w, failing
}

func TestNotifications_NewRequestFallsBackToTheNextChannel(t *testing.T) {
	t.Parallel()
	h, hr, w, failing := notifyingHarness(t)
	h.start("agent", "agent-secret", tradeForm())
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := hr.received()
	if failing.calls != 1 || len(got) != 1 {
		t.Fatalf("email tried %d times, webhook got %d", failing.calls, len(got))
	}
	n := got[0]
	if n["kind"] != "request" || n["subject"] != "alice" || !strings.Contains(n["text"].(string), "BUY 10 NVDA") ||
		!strings.HasPrefix(n["url"].(string), h.issuer()+"app/#/requests/") {
		t.Fatalf("notification %v", n)
	}
	// No secret travels in a notification.
	raw, _ := json.Marshal(n)
	if strings.Contains(string(raw), "auth_req_id") || strings.Contains(string(raw), "agent-secret") {
		t.Fatalf("notification leaks: %s", raw)
	}
}

func TestNotifications_UnreachableUserCostsNoOutbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *authzOptions) {
		o.DefaultChannels = []string{"webpush"}
		o.Channels = map[string]bool{"webpush": true}
	})
	h.start("agent", "agent-secret", tradeForm())
	msgs, err := h.store.ListOutbox(context.Background(), "", 10)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("outbox for a user without subscriptions: %v %v", msgs, err)
	}
}

func TestNotifications_WebPushRequestAndClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *authzOptions) {
		o.DefaultChannels = []string{"webpush"}
		o.Channels = map[string]bool{"webpush": true}
	})
	var mu sync.Mutex
	var pushes []http.Header
	push := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pushes = append(pushes, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(push.Close)
	ctx := context.Background()
	// A subscription with keys a browser would make (the push service here does not decrypt; the
	// channel's own tests check RFC 8291 end to end).
	p256dh := "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	if err := h.alice.SetPushSubscription(ctx, push.URL+"/sub/1", p256dh, "tBHItJI5svbpez7KI4CCXg"); err != nil {
		t.Fatal(err)
	}
	if err := h.alice.SetPushSubscription(ctx, "javascript:alert(1)", p256dh, "tBHItJI5svbpez7KI4CCXg"); apiStatus(err) != 400 {
		t.Fatalf("bad endpoint accepted: %v", err)
	}
	public, private, err := h.svc.VAPIDKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := notify.NewWebPush(notify.WebPushConfig{VAPIDPublicKey: public, VAPIDPrivateKey: private, Subscriber: "mailto:ops@example.com",
		HTTPClient: push.Client(), Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	w := notify.NewWorker(h.store, h.clock, map[string]notify.Sender{authz.OutboxNotify: h.svc.NotificationSender(map[string]notify.Channel{"webpush": wp})}, notify.WorkerOptions{}, nil)
	h.start("agent", "agent-secret", tradeForm())
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	h.decide(h.alice, "Buy 10 NVDA", domain.DecisionApprove)
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) != 2 {
		t.Fatalf("pushes: %d, want the request and its closing", len(pushes))
	}
	if pushes[0].Get("Urgency") != "high" || !strings.HasPrefix(pushes[0].Get("Authorization"), "vapid t=") || pushes[0].Get("Content-Encoding") != "aes128gcm" {
		t.Errorf("push headers %v", pushes[0])
	}
	if pushes[0].Get("Topic") == "" || pushes[0].Get("Topic") != pushes[1].Get("Topic") {
		t.Errorf("the closing push must replace the request's (same Topic): %q %q", pushes[0].Get("Topic"), pushes[1].Get("Topic"))
	}
	cfg := h.get("/device/v1/config")
	if cfg.Status != 200 || cfg.str("vapid_public_key") != public {
		t.Errorf("device config %d %s", cfg.Status, cfg.Body)
	}
}

func TestNumberMatching_ApprovalNeedsTheAgentsCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *authzOptions) { o.RequireNumberMatching = map[string]bool{"agent": true} })
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm())
	code := r.str("verification_code")
	if r.Status != 200 || len(code) != 2 {
		t.Fatalf("bc-authorize %d %s", r.Status, r.Body)
	}
	v := pendingOf(t, h.alice)[0]
	if len(v.VerificationChoices) != 3 || !containsStr(v.VerificationChoices, code) {
		t.Fatalf("choices %v do not include %s", v.VerificationChoices, code)
	}
	again := pendingOf(t, h.alice)[0]
	if strings.Join(again.VerificationChoices, ",") != strings.Join(v.VerificationChoices, ",") {
		t.Error("choices change between reloads")
	}
	ctx := context.Background()
	wrong := "00"
	for _, c := range v.VerificationChoices {
		if c != code {
			wrong = c
		}
	}
	for _, bad := range []string{"", wrong} {
		if _, err := h.alice.DecideWith(ctx, v, domain.DecisionApprove, authDecision(bad)); apiStatus(err) != 400 {
			t.Fatalf("approval with code %q: %v", bad, err)
		}
	}
	if _, err := h.alice.DecideWith(ctx, v, domain.DecisionApprove, authDecision(code)); err != nil {
		t.Fatal(err)
	}
	if r := h.poll("agent", "agent-secret", r.str("auth_req_id")); r.Status != 200 {
		t.Fatalf("token %d %s", r.Status, r.Body)
	}
	// Clients that do not require it get no code.
	if r := h.post("/bc-authorize", "other", "other-secret", tradeForm()); r.JSON["verification_code"] != nil {
		t.Errorf("unexpected verification_code: %s", r.Body)
	}
}

func TestDenyAndReport_HoldsTheClientsPromptsAndTellsTheOperator(t *testing.T) {
	t.Parallel()
	h, hr, w, _ := notifyingHarness(t)
	h.start("agent", "agent-secret", tradeForm())
	v := pendingOf(t, h.alice)[0]
	ctx := context.Background()
	if _, err := h.alice.DecideWith(ctx, v, domain.DecisionApprove, reportDecision()); apiStatus(err) != 400 {
		t.Fatalf("an approval cannot be a report: %v", err)
	}
	if _, err := h.alice.DecideWith(ctx, v, domain.DecisionDeny, reportDecision()); err != nil {
		t.Fatal(err)
	}
	r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("binding_message", "again"))
	expectError(t, r, 403, oauth.ErrAccessDenied)
	if !strings.Contains(r.str("error_description"), "reported") || r.Header.Get("Retry-After") == "" {
		t.Errorf("held answer %s %v", r.Body, r.Header)
	}
	// Another client may still ask, and after the hold this one may too.
	if r := h.post("/bc-authorize", "other", "other-secret", tradeForm()); r.Status != 200 {
		t.Fatalf("other client held: %d %s", r.Status, r.Body)
	}
	h.clock.Advance(time.Hour + time.Second)
	if r := h.post("/bc-authorize", "agent", "agent-secret", tradeForm("binding_message", "later")); r.Status != 200 {
		t.Fatalf("after the hold: %d %s", r.Status, r.Body)
	}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for _, n := range hr.received() {
		if n["kind"] == "report" && n["request_id"] == v.ID {
			reports++
		}
	}
	if reports != 1 {
		t.Fatalf("operator reports: %d (all: %v)", reports, hr.received())
	}
	events, _ := h.store.ListAudit(ctx, domain.AuditFilter{Type: domain.AuditRequestReported})
	if len(events) != 1 || events[0].RequestID != v.ID {
		t.Fatalf("audit %v", events)
	}
}

func TestReminders_OnceBeforeExpiryForLongRequests(t *testing.T) {
	t.Parallel()
	h, hr, w, _ := notifyingHarness(t)
	ctx := context.Background()
	h.start("agent", "agent-secret", tradeForm("requested_expiry", "7200", "binding_message", "long"))
	h.start("agent", "agent-secret", tradeForm("requested_expiry", "600", "binding_message", "short"))
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(95 * time.Minute) // 25 minutes left on the long one; the short one expired
	for range 2 {
		if err := h.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	reminders := 0
	for _, n := range hr.received() {
		if n["kind"] == "reminder" {
			reminders++
			if !strings.Contains(n["text"].(string), "long") {
				t.Errorf("reminded of %v", n)
			}
		}
	}
	if reminders != 1 {
		t.Fatalf("reminders: %d", reminders)
	}
}

func TestPasskeyStepUp_ApprovalCarriesUserVerification(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *authzOptions) { o.RequireUserVerification = map[string]bool{"agent": true} })
	ctx := context.Background()
	u, _ := url.Parse(h.issuer())
	auth := newSoftAuthenticator(t, u.Hostname(), u.Scheme+"://"+u.Host)

	h.start("agent", "agent-secret", tradeForm())
	v := pendingOf(t, h.alice)[0]
	if !v.RequireUserVerification {
		t.Fatal("view does not ask for user verification")
	}
	signed := signDecision(t, h.alice, v)
	// Without a passkey the approval is refused.
	if _, err := h.alice.SendDecision(ctx, v.ID, signed); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("approval without assertion: %v", err)
	}

	// Register a passkey.
	opts, err := h.alice.PasskeyOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cred := auth.create(t, opts)
	if err := h.alice.AddPasskey(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if err := h.alice.AddPasskey(ctx, cred); apiStatus(err) != 400 {
		t.Fatalf("a registration challenge is used once: %v", err)
	}

	v = pendingOf(t, h.alice)[0]
	if len(v.PasskeyCredentialIDs) != 1 {
		t.Fatalf("passkey ids %v", v.PasskeyCredentialIDs)
	}
	// An assertion over another decision does not count.
	other := sha256.Sum256([]byte("another decision"))
	if _, err := h.alice.SendDecisionWithAssertion(ctx, v.ID, signed, auth.assert(t, other[:], "alice")); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("assertion over other content: %v", err)
	}
	sum := sha256.Sum256([]byte(signed))
	out, err := h.alice.SendDecisionWithAssertion(ctx, v.ID, signed, auth.assert(t, sum[:], "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision == nil || !out.Decision.UserVerified {
		t.Fatalf("decision %+v", out.Decision)
	}
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
