package notify

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/countersign/countersign/internal/domain"
)

// WebPushConfig configures the Web Push channel.
type WebPushConfig struct {
	// VAPIDPublicKey and VAPIDPrivateKey are the server's VAPID key pair (RFC 8292), base64url as
	// GenerateVAPIDKeys returns them: an uncompressed P-256 point and a 32-byte scalar. The public
	// key is also the applicationServerKey the app subscribes with.
	VAPIDPublicKey, VAPIDPrivateKey string
	// Subscriber is the contact put in the VAPID "sub" claim, "mailto:..." or "https://...", so a
	// push service can reach the operator about their traffic.
	Subscriber string
	// TTL is how long a push service keeps a message for an offline device (default 12 h). It is
	// also capped at the request's expiry: a prompt delivered after that is useless.
	TTL time.Duration
	// HTTPClient sends to the push services (default: a client with a 15 s timeout). Redirects are
	// never followed.
	HTTPClient *http.Client
	// OnGone is called when a push service answers 404 or 410: the subscription has expired or was
	// revoked and will never work again, so the caller removes it.
	OnGone func(ctx context.Context, sub PushSubscription)
	// Clock is used for the TTL cap (default: the wall clock).
	Clock domain.Clock
}

// WebPush delivers notifications to the authenticator app's service worker through the browser's
// push service: RFC 8030 (protocol), RFC 8291 (aes128gcm payload encryption) and RFC 8292 (VAPID),
// implemented by github.com/SherClockHolmes/webpush-go.
type WebPush struct {
	cfg  WebPushConfig
	http *http.Client
	// subscriber is the contact as the library wants it (see NewWebPush).
	subscriber string
}

// maxPushPayload keeps our payload well inside the 4096-byte record every push service must accept
// (RFC 8291 section 4 leaves 3993 bytes of plaintext); 3 KB leaves room for the library's padding.
const maxPushPayload = 3 << 10

// defaultPushTTL is long enough for a phone that was off for a while to still get a prompt, and
// requests expire earlier anyway.
const defaultPushTTL = 12 * time.Hour

// GenerateVAPIDKeys returns a new VAPID key pair (P-256), base64url without padding: the public key
// as an uncompressed point, the private key as a 32-byte scalar. The server makes one on first
// start and keeps it: changing it invalidates every subscription.
func GenerateVAPIDKeys() (public, private string, err error) {
	// The library returns (private, public); we return them in the order people read them.
	private, public, err = webpush.GenerateVAPIDKeys()
	return public, private, err
}

// NewWebPush checks the configuration (the keys must be a matching P-256 pair, the subscriber a
// mailto: or https: contact) and returns the channel.
func NewWebPush(cfg WebPushConfig) (*WebPush, error) {
	priv, err := decodeB64URL(cfg.VAPIDPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID private key: %w", err)
	}
	pub, err := decodeB64URL(cfg.VAPIDPublicKey)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID public key: %w", err)
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID private key: %w", err)
	}
	if string(key.PublicKey().Bytes()) != string(pub) {
		return nil, errors.New("webpush: VAPID public key does not match the private key")
	}
	var subscriber string
	switch {
	case strings.HasPrefix(cfg.Subscriber, "mailto:") && len(cfg.Subscriber) > len("mailto:"):
		// webpush-go v1.4 prefixes "mailto:" to anything that is not an https: URL, so passing
		// our "mailto:x" would put "mailto:mailto:x" in the JWT. Give it the bare address.
		subscriber = strings.TrimPrefix(cfg.Subscriber, "mailto:")
	case strings.HasPrefix(cfg.Subscriber, "https://"):
		subscriber = cfg.Subscriber
	default:
		return nil, fmt.Errorf("webpush: subscriber must be a mailto: or https: contact, got %q", cfg.Subscriber)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = defaultPushTTL
	}
	cfg.Clock = clockOrSystem(cfg.Clock)
	return &WebPush{cfg: cfg, http: noRedirectClient(cfg.HTTPClient), subscriber: subscriber}, nil
}

// Name returns "webpush".
func (*WebPush) Name() string { return "webpush" }

// pushPayload is what the service worker receives: enough to show a notification and open the
// request, nothing the app could not fetch itself (push services see ciphertext only, but a
// stolen subscription's keys should still reveal nothing useful).
type pushPayload struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	RequestID string `json:"request_id"`
	Title     string `json:"title"`
	Text      string `json:"text"`
	URL       string `json:"url"`
}

// Send pushes n to every subscription of the recipient. It succeeds if at least one push service
// accepted the message: the person sees it on that device, and one dead phone should not make the
// caller fall back to email. A 404 or 410 answer calls OnGone for that subscription. With no
// subscriptions it returns ErrNotApplicable.
func (w *WebPush) Send(ctx context.Context, to Recipient, n Notification) error {
	if len(to.Push) == 0 {
		return ErrNotApplicable
	}
	body, err := json.Marshal(pushPayload{
		ID:        n.ID,
		Kind:      n.Kind,
		RequestID: n.RequestID,
		Title:     truncateRunes(singleLine(n.Title), maxTextRunes),
		Text:      truncateRunes(singleLine(n.Text), maxTextRunes),
		URL:       n.URL,
	})
	if err != nil {
		return err
	}
	if len(body) > maxPushPayload {
		return fmt.Errorf("webpush: payload of %d bytes exceeds %d", len(body), maxPushPayload)
	}
	opts := &webpush.Options{
		HTTPClient:      w.http,
		Subscriber:      w.subscriber,
		VAPIDPublicKey:  w.cfg.VAPIDPublicKey,
		VAPIDPrivateKey: w.cfg.VAPIDPrivateKey,
		TTL:             int(w.ttl(n).Seconds()),
		Urgency:         webpush.UrgencyNormal,
		Topic:           pushTopic(n.RequestID),
	}
	if n.Kind == NotifyRequest {
		// A new prompt should wake a phone even on low battery: an agent is waiting.
		opts.Urgency = webpush.UrgencyHigh
	}
	var errs []error
	delivered := false
	for _, sub := range to.Push {
		if err := w.sendOne(ctx, body, sub, opts); err != nil {
			errs = append(errs, fmt.Errorf("subscription %s: %w", sub.ID, err))
			continue
		}
		delivered = true
	}
	if delivered {
		return nil
	}
	return errors.Join(errs...)
}

func (w *WebPush) sendOne(ctx context.Context, body []byte, sub PushSubscription, opts *webpush.Options) error {
	// The endpoint comes from a browser through an enrolled device; RFC 8030 requires TLS, and
	// refusing anything else keeps a rogue subscription from aiming us at plain-HTTP services.
	if !strings.HasPrefix(sub.Endpoint, "https://") {
		return errors.New("push endpoint is not https")
	}
	s := &webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{P256dh: sub.P256DH, Auth: sub.Auth}}
	resp, err := webpush.SendNotificationWithContext(ctx, body, s, opts)
	if err != nil {
		// An endpoint is a capability URL: keep it out of errors, which end up in logs and in
		// the outbox.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			return fmt.Errorf("push request: %w", ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		if w.cfg.OnGone != nil {
			w.cfg.OnGone(ctx, sub)
		}
		return fmt.Errorf("push service answered HTTP %d: subscription gone", resp.StatusCode)
	default:
		return fmt.Errorf("push service answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(singleLine(string(msg))))
	}
}

// ttl is the configured TTL, capped at the time left before the request expires.
func (w *WebPush) ttl(n Notification) time.Duration {
	ttl := w.cfg.TTL
	if !n.ExpiresAt.IsZero() {
		ttl = min(ttl, n.ExpiresAt.Sub(w.cfg.Clock.Now()))
	}
	return max(ttl, 0)
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// pushTopic names the request in the Topic header, so a later push about the same request (the
// "closed" one) replaces an undelivered earlier one at the push service (RFC 8030 section 5.4).
// A Topic is at most 32 characters of the base64url alphabet: our request ids are; anything else
// is hashed into that shape.
func pushTopic(requestID string) string {
	if requestID == "" {
		return ""
	}
	if topicRE.MatchString(requestID) {
		return requestID
	}
	sum := sha256.Sum256([]byte(requestID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

// decodeB64URL decodes base64url with or without padding, as keys are written both ways.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
