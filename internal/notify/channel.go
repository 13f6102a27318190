package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/domain"
)

// Notification kinds: what a person is told about a request.
const (
	NotifyRequest  = "request"  // a new request waits for the person's decision
	NotifyReminder = "reminder" // a pending request is about to expire
	NotifyClosed   = "closed"   // decided, cancelled or expired: clear what was shown
	NotifyReport   = "report"   // "deny and report": tells the operator
)

// Notification is what a person is told about a request. It carries no secrets: enough to find the
// request in the app, which fetches the details over the authenticated device API.
type Notification struct {
	ID        string // unique per delivery attempt (outbox message id + attempt); receivers dedupe on it
	Kind      string // NotifyRequest, NotifyReminder, NotifyClosed or NotifyReport
	RequestID string
	Subject   string // the user
	Title     string // e.g. "DemoTradePro Agent asks for your approval"
	Text      string // short, e.g. "Buy 10 NVDA at market" (<= 120 chars; channels truncate safely)
	URL       string // opens the request in the web app
	ExpiresAt time.Time
}

// PushSubscription is one browser's Web Push subscription, as its PushSubscription JSON gives it:
// P256DH and Auth are the base64url keys ("keys.p256dh" and "keys.auth"). ID is ours, so that the
// caller can remove a subscription the push service says is gone.
type PushSubscription struct{ ID, Endpoint, P256DH, Auth string }

// Recipient is a person and the addresses they can be reached at. Empty fields mean "no such
// address", and the matching channel answers ErrNotApplicable.
type Recipient struct {
	Subject, Name, Email, Phone string
	Push                        []PushSubscription
}

// Channel delivers a notification one way. An error means this channel failed for this recipient
// (the caller tries the next channel); ErrNotApplicable means the recipient has no address for it
// (no email, no subscription) and is not a failure.
type Channel interface {
	Name() string
	Send(ctx context.Context, to Recipient, n Notification) error
}

// ErrNotApplicable is returned by a channel that has no address for the recipient. It is a
// sentinel compared with errors.Is, never mutated.
var ErrNotApplicable = errors.New("notify: channel not applicable to recipient")

// maxTextRunes bounds Notification.Text in every channel, so that a long binding message cannot
// push the link out of an SMS or a push payload over its size limit.
const maxTextRunes = 120

// SendFirst tries channels in order and stops at the first that delivers, returning its name. A
// channel answering ErrNotApplicable is skipped without counting as a failure. If every applicable
// channel fails, the error joins their failures (each prefixed with the channel's name); if no
// channel applied at all, the error is ErrNotApplicable, so the caller can tell "nobody to tell"
// (nothing to retry) from "delivery failed" (retry later).
func SendFirst(ctx context.Context, channels []Channel, to Recipient, n Notification) (used string, err error) {
	var errs []error
	for _, c := range channels {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		err := c.Send(ctx, to, n)
		switch {
		case err == nil:
			return c.Name(), nil
		case errors.Is(err, ErrNotApplicable):
			continue
		default:
			errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
		}
	}
	if len(errs) == 0 {
		return "", ErrNotApplicable
	}
	return "", errors.Join(errs...)
}

// truncateRunes shortens s to at most n runes, ending with an ellipsis when it cut, without ever
// splitting a UTF-8 sequence (a cut byte would make the message invalid UTF-8 for every channel).
func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n-1 {
			break
		}
		b.WriteRune(r)
		i++
	}
	return strings.TrimRight(b.String(), " ") + "…"
}

// singleLine replaces control characters (line breaks included) with spaces. Titles and texts come
// partly from agents (the binding message): in a one-line rendering such as an SMS or a push
// notification, a line break must not be able to fake a second, official-looking line.
func singleLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// isLoopbackHost reports whether host (a name or an IP, without port) is this machine. Only such
// hosts may be reached without TLS: nothing leaves the machine to be read on the way.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHTTPURL accepts an absolute https URL, or an http URL to a loopback host (a local bridge or
// a test): anything else would send the notification readable over the network.
func checkHTTPURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%s: need an absolute URL without credentials, got %q", what, u.Redacted())
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		return nil, fmt.Errorf("%s: need https (http only to a loopback host), got %q", what, u.Redacted())
	}
	return u, nil
}

// noRedirectClient returns a copy of c (or a default client) that does not follow redirects: the
// endpoints are configured or registered, and a redirect must not carry credentials, signed
// bodies or notification text somewhere else. Copying keeps the caller's transport and timeout; a
// client without a timeout gets 15 s, since a provider that never answers must not hold a worker.
func noRedirectClient(c *http.Client) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	}
	if cc.Timeout == 0 {
		cc.Timeout = 15 * time.Second
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// clockOrSystem returns c, or the wall clock if c is nil, so that configs may leave it out.
func clockOrSystem(c domain.Clock) domain.Clock {
	if c == nil {
		return domain.SystemClock{}
	}
	return c
}
