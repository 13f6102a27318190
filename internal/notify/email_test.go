package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"html"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// selfSigned returns a server TLS config with a fresh certificate for 127.0.0.1 and a client TLS
// config that trusts only it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "countersign test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}},
		&tls.Config{RootCAs: pool}
}

// received is one message the test SMTP server accepted.
type received struct {
	tls      bool // the session was encrypted when the message was sent
	user     string
	from     string
	rcpt     []string
	data     []byte
	password string
}

// smtpServer is a real SMTP server (emersion/go-smtp) on loopback that requires AUTH PLAIN with
// user/pass (unless open) and records what it is sent.
type smtpServer struct {
	port int
	mu   sync.Mutex
	msgs []received
}

type smtpServerOptions struct {
	tls          *tls.Config // STARTTLS offered with this config (nil: not offered)
	implicitTLS  bool        // TLS from the first byte instead
	insecureAuth bool        // offer AUTH without TLS
	open         bool        // no AUTH needed
}

func newSMTPServer(t *testing.T, o smtpServerOptions) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &smtpSession{srv: s, conn: c, open: o.open}, nil
	}))
	srv.Domain = "127.0.0.1"
	srv.AllowInsecureAuth = o.insecureAuth
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicitTLS {
		ln = tls.NewListener(ln, o.tls)
	} else {
		srv.TLSConfig = o.tls
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type smtpSession struct {
	srv  *smtpServer
	conn *gosmtp.Conn
	open bool
	cur  received
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != "notify" || password != "s3cret-pass" {
			return errors.New("invalid username or password")
		}
		s.cur.user, s.cur.password = username, password
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.open && s.cur.user == "" {
		return gosmtp.ErrAuthRequired
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.rcpt = append(s.cur.rcpt, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = received{user: s.cur.user} }
func (s *smtpSession) Logout() error { return nil }

var alice = Recipient{Subject: "alice", Name: "Alice Dupré", Email: "alice@example.com"}

func TestEmail_DeliversOverTLSWithAuthPlain(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{EmailSTARTTLS, EmailTLS} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			serverTLS, clientTLS := selfSigned(t)
			srv := newSMTPServer(t, smtpServerOptions{tls: serverTLS, implicitTLS: mode == EmailTLS})
			e, err := NewEmail(EmailConfig{
				Host: "127.0.0.1", Port: srv.port, Security: mode,
				Username: "notify", Password: "s3cret-pass",
				From:      "Countersign <countersign@example.com>",
				TLSConfig: clientTLS, Clock: fixedClock(testNow),
			})
			if err != nil {
				t.Fatal(err)
			}
			n := testNotification()
			n.Title = "DémoTradePro Agent asks for your approval"
			n.Text = "Buy 10 <b>NVDA</b> & hold"
			if err := e.Send(t.Context(), alice, n); err != nil {
				t.Fatal(err)
			}
			msgs := srv.received()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if !m.tls || m.user != "notify" || m.from != "countersign@example.com" || len(m.rcpt) != 1 || m.rcpt[0] != "alice@example.com" {
				t.Fatalf("envelope: tls=%v user=%q from=%q rcpt=%v", m.tls, m.user, m.from, m.rcpt)
			}
			checkEmailMessage(t, m.data, n)
		})
	}
}

// checkEmailMessage parses a received message as a mail reader would and checks its headers and
// both parts.
func checkEmailMessage(t *testing.T, data []byte, n Notification) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if want := truncateRunes(n.Title, maxSubjectRunes); err != nil || subject != want {
		t.Errorf("Subject = %q (%v), want %q", subject, err, want)
	}
	if from, err := h.AddressList("From"); err != nil || from[0].Address != "countersign@example.com" || from[0].Name != "Countersign" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if to, err := h.AddressList("To"); err != nil || to[0].Address != alice.Email || to[0].Name != alice.Name {
		t.Errorf("To = %v (%v)", to, err)
	}
	if date, err := h.Date(); err != nil || !date.Equal(testNow) {
		t.Errorf("Date = %v (%v), want %v", date, err, testNow)
	}
	if id := h.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID = %q", id)
	}
	if h.Get("MIME-Version") != "1.0" || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("MIME-Version = %q, Auto-Submitted = %q", h.Get("MIME-Version"), h.Get("Auto-Submitted"))
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v)", h.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(b)
	}
	text, htmlPart := parts["text/plain"], parts["text/html"]
	for _, want := range []string{n.Title, n.Text, n.URL, "expires Saturday 14 March 2026, 15:14 UTC", "approve or deny"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{html.EscapeString(n.Title), html.EscapeString(n.Text), `href="` + html.EscapeString(n.URL) + `"`} {
		if !strings.Contains(htmlPart, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, htmlPart)
		}
	}
	if strings.ContainsAny(n.Text, "<&") && strings.Contains(htmlPart, n.Text) {
		t.Errorf("HTML part has the text unescaped:\n%s", htmlPart)
	}
}

func TestEmail_STARTTLSNotOfferedIsAnError(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtpServerOptions{open: true}) // no TLS config: STARTTLS not offered
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: srv.port, From: "countersign@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Send(t.Context(), alice, testNotification())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a refusal to go on without STARTTLS", err)
	}
	if len(srv.received()) != 0 {
		t.Fatal("message sent in clear")
	}
}

func TestEmail_NoneToLoopback(t *testing.T) {
	t.Parallel()
	t.Run("open relay", func(t *testing.T) {
		t.Parallel()
		srv := newSMTPServer(t, smtpServerOptions{open: true})
		e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: srv.port, Security: EmailNone, From: "countersign@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Send(t.Context(), alice, testNotification()); err != nil {
			t.Fatal(err)
		}
		if m := srv.received(); len(m) != 1 || m[0].tls {
			t.Fatalf("received %+v", m)
		}
	})
	t.Run("auth plain to loopback", func(t *testing.T) {
		t.Parallel()
		srv := newSMTPServer(t, smtpServerOptions{insecureAuth: true})
		e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: srv.port, Security: EmailNone, Username: "notify", Password: "s3cret-pass", From: "countersign@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Send(t.Context(), alice, testNotification()); err != nil {
			t.Fatal(err)
		}
		if m := srv.received(); len(m) != 1 || m[0].user != "notify" {
			t.Fatalf("received %+v", m)
		}
	})
}

func TestEmail_WrongPasswordFails(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := selfSigned(t)
	srv := newSMTPServer(t, smtpServerOptions{tls: serverTLS})
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: srv.port, Username: "notify", Password: "wrong", From: "countersign@example.com", TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Send(t.Context(), alice, testNotification())
	if err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("err = %v, want an auth failure", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestEmail_UntrustedCertificateFails(t *testing.T) {
	t.Parallel()
	serverTLS, _ := selfSigned(t)
	_, otherClientTLS := selfSigned(t)
	srv := newSMTPServer(t, smtpServerOptions{tls: serverTLS})
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: srv.port, Username: "notify", Password: "s3cret-pass", From: "countersign@example.com", TLSConfig: otherClientTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(t.Context(), alice, testNotification()); err == nil {
		t.Fatal("sent over TLS to a server whose certificate is not trusted")
	}
	if len(srv.received()) != 0 {
		t.Fatal("message delivered")
	}
}

func TestEmail_PlainAuthRefusedInClearToRemoteHost(t *testing.T) {
	t.Parallel()
	a := &plainAuth{username: "notify", password: "s3cret-pass", host: "mail.example.com"}
	if _, resp, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: false, Auth: []string{"PLAIN"}}); err == nil {
		t.Fatalf("sent credentials %q in clear to a remote host", resp)
	}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: true, Auth: []string{"PLAIN"}}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "other.example.com", TLS: true}); err == nil {
		t.Fatal("sent credentials to a server that is not the configured host")
	}
	local := &plainAuth{username: "notify", password: "s3cret-pass", host: "127.0.0.2"}
	if _, _, err := local.Start(&smtp.ServerInfo{Name: "127.0.0.2", TLS: false}); err != nil {
		t.Fatalf("loopback in clear: %v", err)
	}
	// The config never gets that far: Security "none" is refused for a remote host.
	if _, err := NewEmail(EmailConfig{Host: "mail.example.com", Security: EmailNone, Username: "notify", Password: "x", From: "a@example.com"}); err == nil {
		t.Fatal(`NewEmail accepted security "none" to a remote host`)
	}
}

func TestEmail_HeaderInjectionRejected(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback: nothing listens, so an error about anything but the header means the
	// check came too late.
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: 1, Security: EmailNone, From: "countersign@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	inject := "x\r\nBcc: mallory@example.com"
	n := testNotification()
	n.Title = inject
	if err := e.Send(t.Context(), alice, n); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Errorf("title: err = %v", err)
	}
	for _, to := range []Recipient{
		{Name: inject, Email: "alice@example.com"},
		{Email: "alice@example.com\nBcc: mallory@example.com"},
	} {
		if err := e.Send(t.Context(), to, testNotification()); err == nil || !strings.Contains(err.Error(), "line break") {
			t.Errorf("recipient %q: err = %v", to, err)
		}
	}
	if _, err := NewEmail(EmailConfig{Host: "127.0.0.1", From: "a@example.com\r\nBcc: mallory@example.com"}); err == nil {
		t.Error("from: accepted")
	}
}

func TestEmail_NoAddressIsNotApplicable(t *testing.T) {
	t.Parallel()
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", Port: 1, From: "countersign@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(t.Context(), Recipient{Subject: "alice", Phone: "+15550100"}, testNotification()); err != ErrNotApplicable {
		t.Fatalf("err = %v, want ErrNotApplicable", err)
	}
}

func TestEmail_MessageIsWellFormed(t *testing.T) {
	t.Parallel()
	e, err := NewEmail(EmailConfig{Host: "127.0.0.1", From: "Countersign <countersign@example.com>", Clock: fixedClock(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	n.URL += "?" + strings.Repeat("long=query&", 100)   // longer than a line may be
	n.Title = strings.Repeat("Agent très spécial ", 10) // several encoded words
	to := &mail.Address{Name: alice.Name, Address: alice.Email}
	msg, err := e.buildMessage(to, n)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("message has a bare CR or LF")
	}
	for i, line := range strings.Split(string(msg), "\r\n") {
		if len(line) > 998 || (len(line) > 100 && !strings.HasPrefix(line, "Content-Type:")) {
			t.Errorf("line %d is %d characters long: %q", i, len(line), line)
		}
	}
	checkEmailMessage(t, msg, n)

	// The same delivery attempt keeps its Message-ID, so a resend can be recognised.
	again, _ := e.buildMessage(to, n)
	id := func(b []byte) string { m, _ := mail.ReadMessage(bytes.NewReader(b)); return m.Header.Get("Message-ID") }
	if id(msg) != id(again) {
		t.Error("Message-ID changed for the same notification id")
	}
	n.ID = "outbox-42-2"
	if next, _ := e.buildMessage(to, n); id(next) == id(msg) {
		t.Error("Message-ID is the same for another attempt")
	}
}

func TestEmail_ClosedHasNoCallToAction(t *testing.T) {
	t.Parallel()
	e, _ := NewEmail(EmailConfig{Host: "127.0.0.1", From: "countersign@example.com", Clock: fixedClock(testNow)})
	n := testNotification()
	n.Kind = NotifyClosed
	to, _ := mail.ParseAddress("alice@example.com")
	msg, err := e.buildMessage(to, n)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("approve or deny")) || bytes.Contains(msg, []byte("expires")) {
		t.Errorf("closed notification asks for a decision:\n%s", msg)
	}
	if !bytes.Contains(msg, []byte("no longer needs your decision")) {
		t.Errorf("closed notification does not say so:\n%s", msg)
	}
}

func TestNewEmail_Defaults(t *testing.T) {
	t.Parallel()
	for security, port := range map[string]int{"": 587, EmailSTARTTLS: 587, EmailTLS: 465} {
		e, err := NewEmail(EmailConfig{Host: "smtp.example.com", Security: security, From: "a@example.com"})
		if err != nil || e.cfg.Port != port {
			t.Errorf("security %q: port %v (%v), want %d", security, e, err, port)
		}
	}
	if _, err := NewEmail(EmailConfig{Host: "smtp.example.com", Security: "ssl", From: "a@example.com"}); err == nil {
		t.Error(`security "ssl" accepted`)
	}
	if _, err := NewEmail(EmailConfig{Host: "smtp.example.com", From: "not an address"}); err == nil {
		t.Error("bad from accepted")
	}
}
