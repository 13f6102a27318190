package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// WebhookConfig configures the signed webhook channel.
type WebhookConfig struct {
	// URL receives the POSTs. It must be https, or http to a loopback host (a local bridge).
	URL string
	// Secret keys the HMAC signature; at least 16 bytes, shared with the receiver.
	Secret string
	// HTTPClient sends the request (default: a 15 s timeout). Redirects are never followed: a
	// signed notification goes to the configured URL or nowhere.
	HTTPClient *http.Client
	// Clock stamps sent_at and the signature (default: the wall clock).
	Clock domain.Clock
}

// Webhook posts every notification, signed, to one URL: a bridge for teams to Slack, a ticket
// system or anything else. It applies to every recipient, so it never returns ErrNotApplicable.
//
// The request is a POST with a JSON body
//
//	{"id", "kind", "request_id", "subject", "title", "text", "url", "expires_at", "sent_at"}
//
// (times in RFC 3339, UTC; expires_at is omitted when unknown) and the headers
//
//	Content-Type: application/json
//	X-Countersign-Delivery: <id>                  the idempotency key: the same id is the same delivery
//	X-Countersign-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes exactly as
// received (before any JSON parsing), compares in constant time, and rejects a timestamp outside
// its tolerance so that a captured request cannot be replayed later: VerifyWebhookSignature does
// all of that. Any 2xx answer is success; anything else, a redirect included, is a failure.
type Webhook struct {
	url    string
	secret []byte
	http   *http.Client
	clock  domain.Clock
}

// Webhook signature headers.
const (
	HeaderWebhookSignature = "X-Countersign-Signature"
	HeaderWebhookDelivery  = "X-Countersign-Delivery"
)

// minWebhookSecret keeps the HMAC key out of guessing range.
const minWebhookSecret = 16

// NewWebhook checks the configuration and returns the channel.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := checkHTTPURL("webhook: URL", cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Secret) < minWebhookSecret {
		return nil, fmt.Errorf("webhook: secret must be at least %d bytes", minWebhookSecret)
	}
	return &Webhook{url: u.String(), secret: []byte(cfg.Secret), http: noRedirectClient(cfg.HTTPClient), clock: clockOrSystem(cfg.Clock)}, nil
}

// Name returns "webhook".
func (*Webhook) Name() string { return "webhook" }

// webhookBody is the JSON the receiver gets. Unlike a push payload it names the subject: the
// receiver is the operator's own bridge, and "who is asked" is what a team channel needs.
type webhookBody struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	RequestID string     `json:"request_id"`
	Subject   string     `json:"subject"`
	Title     string     `json:"title"`
	Text      string     `json:"text"`
	URL       string     `json:"url"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	SentAt    time.Time  `json:"sent_at"`
}

// Send posts n, signed. It ignores the recipient's addresses: the webhook is one URL for everyone.
func (w *Webhook) Send(ctx context.Context, to Recipient, n Notification) error {
	now := w.clock.Now().UTC()
	b := webhookBody{
		ID:        n.ID,
		Kind:      n.Kind,
		RequestID: n.RequestID,
		Subject:   n.Subject,
		Title:     n.Title,
		Text:      truncateRunes(n.Text, maxTextRunes),
		URL:       n.URL,
		SentAt:    now.Truncate(time.Second),
	}
	if b.Subject == "" {
		b.Subject = to.Subject
	}
	if !n.ExpiresAt.IsZero() {
		e := n.ExpiresAt.UTC()
		b.ExpiresAt = &e
	}
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.ID != "" {
		if err := checkHeaderValue("notification id", n.ID); err != nil {
			return err
		}
		req.Header.Set(HeaderWebhookDelivery, n.ID)
	}
	req.Header.Set(HeaderWebhookSignature, signWebhook(w.secret, now.Unix(), body))
	resp, err := w.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// signWebhook returns the signature header value for body sent at unix time t.
func signWebhook(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Webhook verification errors, for receivers that want to tell them apart.
var (
	ErrWebhookSignatureMalformed = errors.New("webhook signature header is malformed")
	ErrWebhookSignatureMismatch  = errors.New("webhook signature does not match")
	ErrWebhookTimestampOld       = errors.New("webhook timestamp is outside the tolerance")
)

// DefaultWebhookTolerance is the timestamp window VerifyWebhookSignature uses when given none:
// wide enough for clock skew and retries in flight, narrow enough to make replays useless.
const DefaultWebhookTolerance = 5 * time.Minute

// VerifyWebhookSignature checks an X-Countersign-Signature header (see Webhook for the scheme)
// for body, the raw request body. It accepts the header if one of its v1 values is the HMAC of
// "<t>.<body>" under secret (several v1 values let a sender sign with an old and a new secret
// while rotating) and t is within tolerance of now in either direction (a timestamp from the
// future is as suspect as an old one). A tolerance <= 0 means DefaultWebhookTolerance.
func VerifyWebhookSignature(secret string, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrWebhookSignatureMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrWebhookSignatureMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrWebhookSignatureMalformed
			}
			sigs = append(sigs, sig)
		default:
			// Other schemes (a future v2) are ignored, so senders can add them first.
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrWebhookSignatureMalformed
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return ErrWebhookTimestampOld
	}
	want := webhookMAC([]byte(secret), ts, body)
	match := false
	for _, sig := range sigs {
		// Check every value, so timing does not tell which one matched.
		if hmac.Equal(sig, want) {
			match = true
		}
	}
	if !match {
		return ErrWebhookSignatureMismatch
	}
	return nil
}
