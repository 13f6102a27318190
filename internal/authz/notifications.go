package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/oauth"
)

// Outbox kinds of notifications to people and to the operator.
const (
	OutboxNotify = "notify"
	OutboxReport = "report"
)

// notifyPayload is the outbox payload of a notification: what happened to which request. The
// details are read when it is delivered, so a notification never says more than the request does.
type notifyPayload struct {
	Kind      string `json:"kind"`
	RequestID string `json:"request_id"`
}

// channelsFor returns the user's notification channels in order, or the server's default.
func (s *Service) channelsFor(u domain.User) []string {
	if len(u.Channels) > 0 {
		return u.Channels
	}
	return s.opts.DefaultChannels
}

// shouldNotify decides, before the transaction and from the read side of the store, whether a
// notification of this kind can reach the user: requests to users nobody can notify then cost no
// outbox traffic, and the single writer does no reads for it. A subscription added in between is
// picked up by the next notification.
func (s *Service) shouldNotify(ctx context.Context, u domain.User, kind string) (bool, error) {
	channels := s.channelsFor(u)
	if kind == notify.NotifyClosed {
		// "closed" only clears what Web Push showed.
		channels = []string{"webpush"}
		if !slices.Contains(s.channelsFor(u), "webpush") {
			return false, nil
		}
	}
	for _, ch := range channels {
		if !s.opts.Channels[ch] {
			continue
		}
		switch ch {
		case "webpush":
			subs, err := s.store.ListPushSubscriptions(ctx, u.Subject)
			if err != nil {
				return false, err
			}
			if len(subs) > 0 {
				return true, nil
			}
		case "email":
			if u.Email != "" {
				return true, nil
			}
		case "sms":
			if u.Phone != "" {
				return true, nil
			}
		case "webhook":
			return true, nil
		}
	}
	return false, nil
}

// shouldNotifySubject is shouldNotify for a user known by subject.
func (s *Service) shouldNotifySubject(ctx context.Context, subject, kind string) (bool, error) {
	if len(s.opts.Channels) == 0 {
		return false, nil
	}
	u, err := s.store.GetUser(ctx, subject)
	if err != nil {
		return false, err
	}
	return s.shouldNotify(ctx, u, kind)
}

// enqueueNotification writes a notification of kind about r to the outbox inside tx.
func (s *Service) enqueueNotification(ctx context.Context, tx domain.Store, r domain.Request, kind string) error {
	payload, _ := json.Marshal(notifyPayload{Kind: kind, RequestID: r.ID})
	now := s.now()
	_, err := tx.EnqueueOutbox(ctx, domain.OutboxMessage{
		Kind: OutboxNotify, RequestID: r.ID, Target: r.Subject, Payload: payload,
		Status: domain.OutboxPending, CreatedAt: now, NextAttemptAt: now,
	})
	return err
}

// NotificationSender delivers OutboxNotify messages: it builds the notification from the request
// and tries the user's channels in order until one delivers.
type NotificationSender struct {
	svc      *Service
	channels map[string]notify.Channel
}

// NotificationSender returns the sender for OutboxNotify with the configured channels by name.
func (s *Service) NotificationSender(channels map[string]notify.Channel) *NotificationSender {
	return &NotificationSender{svc: s, channels: channels}
}

// Send implements notify.Sender.
func (ns *NotificationSender) Send(ctx context.Context, m domain.OutboxMessage) error {
	s := ns.svc
	var p notifyPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return &notify.PermanentError{Err: fmt.Errorf("notification payload: %w", err)}
	}
	r, err := s.store.GetRequest(ctx, p.RequestID)
	if err != nil {
		return err
	}
	if p.Kind != notify.NotifyClosed && (r.Status != domain.StatusPending || r.IsExpired(s.now())) {
		return nil // decided meanwhile: telling the user now would only confuse
	}
	u, err := s.store.GetUser(ctx, r.Subject)
	if err != nil {
		return err
	}
	to := notify.Recipient{Subject: u.Subject, Name: u.Name, Email: u.Email, Phone: u.Phone}
	subs, err := s.store.ListPushSubscriptions(ctx, u.Subject)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		to.Push = append(to.Push, notify.PushSubscription{ID: sub.DeviceID, Endpoint: sub.Endpoint, P256DH: sub.P256DH, Auth: sub.Auth})
	}
	var chans []notify.Channel
	names := s.channelsFor(u)
	if p.Kind == notify.NotifyClosed {
		names = []string{"webpush"}
	}
	for _, name := range names {
		if ch := ns.channels[name]; ch != nil {
			chans = append(chans, ch)
		}
	}
	n := s.notificationFor(r, p.Kind, m)
	used, err := notify.SendFirst(ctx, chans, to, n)
	if errors.Is(err, notify.ErrNotApplicable) {
		return nil // nobody to tell (a subscription went away): nothing to retry
	}
	if err == nil {
		s.log.Debug("notified", "request_id", r.ID, "kind", p.Kind, "channel", used)
	}
	return err
}

// notificationFor words a notification: who asks, and the request in one line.
func (s *Service) notificationFor(r domain.Request, kind string, m domain.OutboxMessage) notify.Notification {
	title := r.ClientName + " asks for your approval"
	switch kind {
	case notify.NotifyReminder:
		title = "Reminder: " + r.ClientName + " is waiting for your approval"
	case notify.NotifyReport:
		title = "A user reported a request from " + r.ClientName
	}
	text := r.BindingMessage
	if rendered := s.opts.DetailTypes.Render(r.AuthorizationDetails); len(rendered) > 0 {
		if text != "" {
			text += ": "
		}
		text += rendered[0].Text
	}
	return notify.Notification{
		ID: strconv.FormatInt(m.ID, 10) + "-" + strconv.Itoa(m.Attempts), Kind: kind, RequestID: r.ID,
		Subject: r.Subject, Title: title, Text: text, URL: s.RequestURL(r.ID), ExpiresAt: r.ExpiresAt,
	}
}

// RequestURL is where the web authenticator shows a request.
func (s *Service) RequestURL(id string) string {
	return s.opts.Issuer + "app/#/requests/" + url.PathEscape(id)
}

// ReportSender delivers OutboxReport messages (a user's "not mine") to the operator's webhook.
type ReportSender struct {
	svc     *Service
	channel notify.Channel
}

// ReportSender returns the sender for OutboxReport; channel is the operator webhook.
func (s *Service) ReportSender(channel notify.Channel) *ReportSender {
	return &ReportSender{svc: s, channel: channel}
}

// Send implements notify.Sender.
func (rs *ReportSender) Send(ctx context.Context, m domain.OutboxMessage) error {
	r, err := rs.svc.store.GetRequest(ctx, m.RequestID)
	if err != nil {
		return err
	}
	return rs.channel.Send(ctx, notify.Recipient{Subject: r.Subject}, rs.svc.notificationFor(r, notify.NotifyReport, m))
}

// SetPushSubscription records the device's Web Push subscription (replacing any earlier one).
func (s *Service) SetPushSubscription(ctx context.Context, dev domain.Device, endpoint, p256dh, auth string) error {
	// RFC 8030 push services speak TLS; the Web Push channel refuses anything else too.
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return deviceError(oauth.ErrInvalidRequest, "endpoint must be an https URL of a push service")
	}
	if len(endpoint) > 2048 {
		return deviceError(oauth.ErrInvalidRequest, "endpoint is longer than 2048 bytes")
	}
	if k, err := base64.RawURLEncoding.DecodeString(trimPad(p256dh)); err != nil || len(k) != 65 || k[0] != 4 {
		return deviceError(oauth.ErrInvalidRequest, "keys.p256dh must be a base64url uncompressed P-256 point")
	}
	if a, err := base64.RawURLEncoding.DecodeString(trimPad(auth)); err != nil || len(a) != 16 {
		return deviceError(oauth.ErrInvalidRequest, "keys.auth must be 16 base64url bytes")
	}
	now := s.now()
	return s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.PutPushSubscription(ctx, domain.PushSubscription{DeviceID: dev.ID, Subject: dev.Subject, Endpoint: endpoint,
			P256DH: trimPad(p256dh), Auth: trimPad(auth), CreatedAt: now}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditPushSubscribed, Subject: dev.Subject, DeviceID: dev.ID})
	})
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// RemovePushSubscription forgets the device's subscription.
func (s *Service) RemovePushSubscription(ctx context.Context, dev domain.Device) error {
	return s.store.DeletePushSubscription(ctx, dev.ID)
}

// ForgetPushSubscription removes a subscription the push service said is gone (404 or 410).
func (s *Service) ForgetPushSubscription(ctx context.Context, deviceID string) {
	if err := s.store.DeletePushSubscription(ctx, deviceID); err != nil {
		s.log.Warn("remove gone push subscription", "device_id", deviceID, "error", err)
	}
}

// vapidKeyID is the stored key that signs VAPID tokens (RFC 8292). It is kept apart from token
// signing keys (use "vapid"), and never rotates: subscriptions are bound to it.
const vapidKeyID = "vapid"

// VAPIDKeys returns the server's VAPID key pair as base64url (public: uncompressed P-256 point;
// private: the scalar), generating and storing it on first use.
func (s *Service) VAPIDKeys(ctx context.Context) (public, private string, err error) {
	// Cached: the key never changes, and GET device/v1/config (unauthenticated) must not cost a
	// transaction on the writer.
	s.vapid.mu.Lock()
	defer s.vapid.mu.Unlock()
	if s.vapid.public != "" {
		return s.vapid.public, s.vapid.private, nil
	}
	var key *ecdsa.PrivateKey
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		keys, err := tx.ListKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.ID == vapidKeyID && k.Use == "vapid" {
				parsed, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
				if err != nil {
					return fmt.Errorf("stored VAPID key: %w", err)
				}
				var ok bool
				if key, ok = parsed.(*ecdsa.PrivateKey); !ok {
					return errors.New("stored VAPID key is not ECDSA")
				}
				return nil
			}
		}
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		now := s.now()
		return tx.PutKey(ctx, domain.SigningKey{ID: vapidKeyID, Algorithm: "ES256", Use: "vapid", Status: domain.KeyActive,
			PrivateKey: der, CreatedAt: now, ActivatedAt: now})
	})
	if err != nil {
		return "", "", err
	}
	ecdhKey, err := key.ECDH()
	if err != nil {
		return "", "", err
	}
	enc := base64.RawURLEncoding
	s.vapid.public, s.vapid.private = enc.EncodeToString(ecdhKey.PublicKey().Bytes()), enc.EncodeToString(ecdhKey.Bytes())
	return s.vapid.public, s.vapid.private, nil
}

// remind sends a reminder for a pending request that is about to expire, once.
func (s *Service) remind(ctx context.Context, r domain.Request, now time.Time) error {
	queued, err := s.shouldNotifySubject(ctx, r.Subject, notify.NotifyReminder)
	if err != nil {
		return err
	}
	id := r.ID
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		var err error
		r, err = tx.UpdateRequest(ctx, id, func(req *domain.Request) error {
			if req.Status != domain.StatusPending || !req.RemindedAt.IsZero() {
				return domain.ErrNotPending
			}
			req.RemindedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		if queued {
			if err := s.enqueueNotification(ctx, tx, r, notify.NotifyReminder); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestReminded, r, "", nil))
	})
	if err != nil {
		return err
	}
	if queued {
		s.obs.OutboxEnqueued()
	}
	return nil
}
