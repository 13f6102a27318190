package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// smsProvider is a Twilio-compatible receiver on loopback: it checks Basic auth, the path and the
// form, records the messages, and answers like Twilio.
type smsProvider struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]string
	fail   bool // answer Twilio's "invalid To" error
}

func newSMSProvider(t *testing.T) *smsProvider {
	p := &smsProvider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "AC123" || pass != "tok-secret-123" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type = %q", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if p.fail {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`)
			return
		}
		p.mu.Lock()
		p.bodies = append(p.bodies, map[string]string{"To": r.PostForm.Get("To"), "From": r.PostForm.Get("From"), "Body": r.PostForm.Get("Body")})
		p.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"sid":"SM1","status":"queued"}`)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *smsProvider) received() []map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]string(nil), p.bodies...)
}

func newTestSMS(t *testing.T, p *smsProvider, token string) *SMS {
	t.Helper()
	s, err := NewSMS(SMSConfig{BaseURL: p.srv.URL + "/", AccountSID: "AC123", AuthToken: token, From: "+15550001111", HTTPClient: p.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMS_PostsTwilioForm(t *testing.T) {
	t.Parallel()
	p := newSMSProvider(t)
	s := newTestSMS(t, p, "tok-secret-123")
	n := testNotification()
	if err := s.Send(t.Context(), Recipient{Subject: "alice", Phone: "+15550102030"}, n); err != nil {
		t.Fatal(err)
	}
	got := p.received()
	if len(got) != 1 {
		t.Fatalf("provider got %d messages", len(got))
	}
	want := n.Title + "\n" + n.Text + "\n" + n.URL
	if got[0]["To"] != "+15550102030" || got[0]["From"] != "+15550001111" || got[0]["Body"] != want {
		t.Errorf("form = %q\nwant Body %q", got[0], want)
	}
}

func TestSMS_ProviderErrorCarriesMessageNotToken(t *testing.T) {
	t.Parallel()
	p := newSMSProvider(t)
	p.fail = true
	s := newTestSMS(t, p, "tok-secret-123")
	err := s.Send(t.Context(), Recipient{Phone: "+1555"}, testNotification())
	if err == nil || !strings.Contains(err.Error(), "not a valid phone number") || !strings.Contains(err.Error(), "21211") || !strings.Contains(err.Error(), "400") {
		t.Fatalf("err = %v, want the provider's message", err)
	}
	bad := newTestSMS(t, p, "wrong-token-456")
	err = bad.Send(t.Context(), Recipient{Phone: "+15550102030"}, testNotification())
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-token-456") {
		t.Fatalf("err = %v, want HTTP 401 without the token", err)
	}
}

func TestSMS_NoPhoneIsNotApplicable(t *testing.T) {
	t.Parallel()
	p := newSMSProvider(t)
	s := newTestSMS(t, p, "tok-secret-123")
	if err := s.Send(t.Context(), Recipient{Subject: "alice", Email: "a@example.com"}, testNotification()); err != ErrNotApplicable {
		t.Fatalf("err = %v, want ErrNotApplicable", err)
	}
	if len(p.received()) != 0 {
		t.Fatal("sent")
	}
}

func TestSMS_RedirectNotFollowed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
			t.Errorf("redirect followed to %s", r.URL.Path)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	s, err := NewSMS(SMSConfig{BaseURL: srv.URL, AccountSID: "AC123", AuthToken: "tok-secret-123", From: "+15550001111"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), Recipient{Phone: "+15550102030"}, testNotification()); err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("err = %v, want HTTP 307 as a failure", err)
	}
}

func TestSMSBody_FitsAndKeepsTheLink(t *testing.T) {
	t.Parallel()
	n := testNotification()
	n.Title = strings.Repeat("Very Long Agent Name ", 20)
	n.Text = strings.Repeat("ünïcode text ", 30) + "\nsecond line"
	body, err := smsBody(n)
	if err != nil {
		t.Fatal(err)
	}
	if c := utf8.RuneCountInString(body); c > maxSMSRunes || !utf8.ValidString(body) {
		t.Errorf("body has %d runes (max %d) or is invalid UTF-8", c, maxSMSRunes)
	}
	lines := strings.Split(body, "\n")
	if len(lines) != 3 || lines[2] != n.URL || !strings.HasSuffix(lines[0], "…") || !strings.HasSuffix(lines[1], "…") {
		t.Errorf("body = %q", body)
	}
	n.URL = "https://example.com/" + strings.Repeat("x", 320)
	if _, err := smsBody(n); err == nil {
		t.Error("a link too long for an SMS was accepted")
	}
}

func TestNewSMS_RejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]SMSConfig{
		"no token":           {AccountSID: "AC1", From: "+1"},
		"http to remote":     {BaseURL: "http://api.example.com", AccountSID: "AC1", AuthToken: "t", From: "+1"},
		"credentials in URL": {BaseURL: "https://u:p@api.example.com", AccountSID: "AC1", AuthToken: "t", From: "+1"},
		"SID with a slash":   {AccountSID: "AC1/../x", AuthToken: "t", From: "+1"},
		"relative base URL":  {BaseURL: "/api", AccountSID: "AC1", AuthToken: "t", From: "+1"},
		"unsupported scheme": {BaseURL: "ftp://api.example.com", AccountSID: "AC1", AuthToken: "t", From: "+1"},
		"no sender":          {AccountSID: "AC1", AuthToken: "t"},
	} {
		if _, err := NewSMS(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := NewSMS(SMSConfig{AccountSID: "AC1", AuthToken: "t", From: "+1"})
	if err != nil || s.endpoint != "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json" {
		t.Errorf("default endpoint %v (%v)", s, err)
	}
}
