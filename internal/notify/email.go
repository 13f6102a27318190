package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// Email security modes.
const (
	EmailSTARTTLS = "starttls" // plain connect, then STARTTLS, which must be offered (default)
	EmailTLS      = "tls"      // implicit TLS from the first byte (port 465)
	EmailNone     = "none"     // no TLS: only to a loopback host, such as a local relay
)

// EmailConfig configures the email channel.
type EmailConfig struct {
	Host string
	Port int // default 587 for starttls, 465 for tls, 25 for none
	// Security is EmailSTARTTLS (default), EmailTLS or EmailNone. With STARTTLS, a server that does
	// not offer it is an error, never a silent fallback to plain text.
	Security string
	// Username and Password, if set, authenticate with AUTH PLAIN, which is only ever sent over
	// TLS or to a loopback host.
	Username, Password string
	// From is the sender, "addr@example.com" or "Countersign <addr@example.com>".
	From string
	// TLSConfig is used for STARTTLS and implicit TLS (tests inject RootCAs). ServerName defaults
	// to Host.
	TLSConfig *tls.Config
	// Timeout bounds one whole delivery: connect, TLS, auth and data (default 30 s).
	Timeout time.Duration
	// Clock dates the message (default: the wall clock).
	Clock domain.Clock
}

// maxSubjectRunes keeps the subject readable in a mail list and its header line short.
const maxSubjectRunes = 150

// Email delivers notifications over SMTP with net/smtp, so that a person without the app still
// gets a link to the request.
type Email struct {
	cfg  EmailConfig
	from *mail.Address
}

// NewEmail checks the configuration and returns the channel. It refuses Security "none" to a host
// that is not loopback, so that neither credentials nor request text cross a network in clear.
func NewEmail(cfg EmailConfig) (*Email, error) {
	if cfg.Host == "" {
		return nil, errors.New("email: host is required")
	}
	if cfg.Security == "" {
		cfg.Security = EmailSTARTTLS
	}
	switch cfg.Security {
	case EmailSTARTTLS, EmailTLS:
	case EmailNone:
		if !isLoopbackHost(cfg.Host) {
			return nil, fmt.Errorf("email: security %q is only allowed to a loopback host, not %q", EmailNone, cfg.Host)
		}
	default:
		return nil, fmt.Errorf("email: security must be %q, %q or %q, got %q", EmailSTARTTLS, EmailTLS, EmailNone, cfg.Security)
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{EmailSTARTTLS: 587, EmailTLS: 465, EmailNone: 25}[cfg.Security]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("email: port %d out of range", cfg.Port)
	}
	if err := checkHeaderValue("from", cfg.From); err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("email: from %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.Clock = clockOrSystem(cfg.Clock)
	return &Email{cfg: cfg, from: from}, nil
}

// Name returns "email".
func (*Email) Name() string { return "email" }

// Send mails n to the recipient's address; without one it returns ErrNotApplicable. The message is
// built, and every header value checked, before connecting, so a bad notification costs no
// connection.
func (e *Email) Send(ctx context.Context, to Recipient, n Notification) error {
	if to.Email == "" {
		return ErrNotApplicable
	}
	if err := checkHeaderValue("recipient name", to.Name); err != nil {
		return err
	}
	if err := checkHeaderValue("recipient address", to.Email); err != nil {
		return err
	}
	rcpt, err := mail.ParseAddress(to.Email)
	if err != nil {
		return fmt.Errorf("recipient address: %w", err)
	}
	rcpt.Name = to.Name
	msg, err := e.buildMessage(rcpt, n)
	if err != nil {
		return err
	}
	return e.deliver(ctx, rcpt.Address, msg)
}

// deliver runs one SMTP transaction. net/smtp has no context, so the connection gets a deadline
// from ctx and Timeout, and is closed if ctx is cancelled mid-way.
func (e *Email) deliver(ctx context.Context, rcpt string, msg []byte) (err error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(e.cfg.Host, strconv.Itoa(e.cfg.Port))
	var conn net.Conn
	if e.cfg.Security == EmailTLS {
		d := tls.Dialer{Config: e.tlsConfig()}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}()

	c, err := smtp.NewClient(conn, e.cfg.Host)
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if e.cfg.Security == EmailSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("smtp: server does not offer STARTTLS")
		}
		if err := c.StartTLS(e.tlsConfig()); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if e.cfg.Username != "" || e.cfg.Password != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("smtp: server does not offer AUTH")
		}
		if err := c.Auth(&plainAuth{username: e.cfg.Username, password: e.cfg.Password, host: e.cfg.Host}); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	// The message is accepted once DATA is answered; a failed QUIT does not undo that, and
	// reporting it would make the caller send a second copy.
	_ = c.Quit()
	return nil
}

func (e *Email) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if e.cfg.TLSConfig != nil {
		cfg = e.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = e.cfg.Host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// plainAuth is AUTH PLAIN (RFC 4616) that only sends the password over TLS or to a loopback
// host. net/smtp's PlainAuth has the same rule but knows only "localhost", "127.0.0.1" and
// "::1"; ours accepts any loopback address and states the rule where the config is checked.
type plainAuth struct {
	username, password, host string
}

// Start refuses to send the credentials in clear to another machine or to a server that is not
// the configured host.
func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLoopbackHost(server.Name) {
		return "", nil, errors.New("refusing AUTH PLAIN over an unencrypted connection to a non-loopback host")
	}
	if server.Name != a.host {
		return "", nil, errors.New("smtp: wrong host name")
	}
	return "PLAIN", []byte("\x00" + a.username + "\x00" + a.password), nil
}

// Next fails on any challenge: PLAIN is one round trip.
func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("smtp: unexpected AUTH PLAIN challenge")
	}
	return nil, nil
}

// checkHeaderValue rejects CR and LF (and other control characters but tab) in a value that goes
// into a header, the only way to inject headers or a body.
func checkHeaderValue(what, v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) {
		return fmt.Errorf("%s contains a line break or control character", what)
	}
	return nil
}

// buildMessage renders an RFC 5322 message: a text part and an HTML alternative, both as
// quoted-printable UTF-8, so that any text and long links survive 7-bit relays and line limits.
func (e *Email) buildMessage(rcpt *mail.Address, n Notification) ([]byte, error) {
	if err := checkHeaderValue("title", n.Title); err != nil {
		return nil, err
	}
	now := e.cfg.Clock.Now()
	v := newEmailView(n)
	text := renderEmailText(v)
	var html bytes.Buffer
	if err := emailHTML.Execute(&html, v); err != nil {
		return nil, err
	}
	boundary, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	msgID, err := e.messageID(n)
	if err != nil {
		return nil, err
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", e.from.String())
	header("To", rcpt.String())
	// A long non-ASCII title becomes several encoded words; folding between them keeps every
	// header line within the 998-character limit of RFC 5322.
	subject := mime.QEncoding.Encode("utf-8", truncateRunes(n.Title, maxSubjectRunes))
	header("Subject", strings.ReplaceAll(subject, "?= =?", "?=\r\n =?"))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("MIME-Version", "1.0")
	// RFC 3834: tells mail servers and vacation responders this is machine-sent, so they do not
	// answer it.
	header("Auto-Submitted", "auto-generated")
	header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct {
		ctype string
		body  []byte
	}{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html.Bytes()}} {
		b.WriteString("--" + boundary + "\r\n")
		header("Content-Type", part.ctype)
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		qp := quotedprintable.NewWriter(&b)
		if _, err := qp.Write(crlf(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// messageID derives the Message-ID from the notification id when there is one, so that the same
// delivery attempt sent twice (a crash between DATA and recording it) has the same id and mail
// systems can drop the duplicate. The hash keeps our ids' alphabet out of the question.
func (e *Email) messageID(n Notification) (string, error) {
	domainPart := "countersign.invalid"
	if at := strings.LastIndexByte(e.from.Address, '@'); at >= 0 {
		domainPart = e.from.Address[at+1:]
	}
	if n.ID != "" {
		sum := sha256.Sum256([]byte(n.ID))
		return "<" + hex.EncodeToString(sum[:16]) + "@" + domainPart + ">", nil
	}
	r, err := randomHex(16)
	if err != nil {
		return "", err
	}
	return "<" + r + "@" + domainPart + ">", nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// crlf turns the template's line endings into CRLF, as SMTP requires.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// emailView is what both parts show. Lead is the line before the link, which depends on what the
// person is asked to do; Warn adds the "not you?" hint only where a decision is asked for.
type emailView struct {
	Title, Text, URL, Expires, Lead string
	Warn                            bool
}

func newEmailView(n Notification) emailView {
	// The text is the agent's binding message: kept on one line so it cannot draw a fake link
	// line of its own under ours.
	v := emailView{Title: n.Title, Text: truncateRunes(singleLine(n.Text), maxTextRunes), URL: n.URL}
	switch n.Kind {
	case NotifyClosed:
		v.Lead = "This request no longer needs your decision."
	case NotifyReport:
		v.Lead = "Open the request for details."
	default:
		v.Lead = "Open the request to approve or deny it."
		v.Warn = true
		if !n.ExpiresAt.IsZero() {
			v.Expires = n.ExpiresAt.UTC().Format("Monday 2 January 2006, 15:04 UTC")
		}
	}
	return v
}

const emailWarning = "If you did not expect this, deny it in the app: an agent is asking to act in your name."

// renderEmailText is the plain part. It is built by hand rather than with a template because
// nothing in it may be escaped: it is shown as is.
func renderEmailText(v emailView) []byte {
	var b bytes.Buffer
	b.WriteString(v.Title + "\n\n")
	if v.Text != "" {
		b.WriteString(v.Text + "\n\n")
	}
	b.WriteString(v.Lead + "\n" + v.URL + "\n")
	if v.Expires != "" {
		b.WriteString("\nIt expires " + v.Expires + ".\n")
	}
	if v.Warn {
		b.WriteString("\n" + emailWarning + "\n")
	}
	return b.Bytes()
}

// emailHTML escapes every value (html/template), and its URL sanitizer turns a non-http link into
// "#ZgotmplZ" rather than a javascript: URL.
var emailHTML = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family:sans-serif;line-height:1.5;color:#111">
<h1 style="font-size:1.2em">{{.Title}}</h1>
{{if .Text}}<p style="font-size:1.1em"><strong>{{.Text}}</strong></p>
{{end}}<p>{{.Lead}}</p>
<p><a href="{{.URL}}" style="display:inline-block;padding:0.6em 1.2em;background:#1a56db;color:#fff;text-decoration:none;border-radius:4px">Open the request</a></p>
<p style="font-size:0.9em">Or copy this link: {{.URL}}</p>
{{if .Expires}}<p>It expires {{.Expires}}.</p>
{{end}}{{if .Warn}}<p style="color:#555;font-size:0.9em">` + emailWarning + `</p>
{{end}}</body></html>
`))
