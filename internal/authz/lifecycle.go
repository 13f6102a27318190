package authz

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/oauth"
)

// callback builds the outbox message that tells a ping or push client how a request ended; nil for
// poll clients. body is the push body (a token response or an error); ping sends only auth_req_id.
func callback(r domain.Request, c domain.Client, body any) (*domain.OutboxMessage, error) {
	var kind string
	switch r.DeliveryMode {
	case domain.DeliveryPing:
		kind, body = notify.KindCIBAPing, oauth.PingNotification{AuthReqID: r.CallbackAuthReqID}
	case domain.DeliveryPush:
		kind = notify.KindCIBAPush
	default:
		return nil, nil
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(notify.CallbackPayload{Bearer: r.NotificationToken, Body: raw})
	if err != nil {
		return nil, err
	}
	return &domain.OutboxMessage{
		Kind: kind, RequestID: r.ID, Target: c.NotificationEndpoint, Payload: payload, Status: domain.OutboxPending,
	}, nil
}

// enqueueCallback writes the CIBA callback for r, if its client wants one, inside tx.
func (s *Service) enqueueCallback(ctx context.Context, tx domain.Store, r domain.Request, body any) (bool, error) {
	if r.DeliveryMode != domain.DeliveryPing && r.DeliveryMode != domain.DeliveryPush {
		return false, nil
	}
	c, err := tx.GetClient(ctx, r.ClientID)
	if err != nil {
		return false, err
	}
	m, err := callback(r, c, body)
	if err != nil || m == nil {
		return false, err
	}
	now := s.now()
	m.CreatedAt, m.NextAttemptAt = now, now
	_, err = tx.EnqueueOutbox(ctx, *m)
	return err == nil, err
}

// changed tells everyone who cares that a request left the pending state.
func (s *Service) changed(r domain.Request, outbox bool) {
	s.polls.forget(r.ID)
	s.hub.Notify(r.ID)
	s.obs.RequestChanged(r)
	if outbox {
		s.obs.OutboxEnqueued()
	}
}

// expire moves an overdue pending request to expired, with its audit event and callback.
func (s *Service) expire(ctx context.Context, id string, subject string) error {
	notifyClosed, err := s.shouldNotifySubject(ctx, subject, notify.NotifyClosed)
	if err != nil {
		return err
	}
	now := s.now()
	var r domain.Request
	var queued bool
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		var err error
		r, err = tx.UpdateRequest(ctx, id, func(req *domain.Request) error { return req.Expire(now) })
		if err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestExpired, r, "", nil)); err != nil {
			return err
		}
		queued, err = s.enqueueCallback(ctx, tx, r, oauth.PushError{
			AuthReqID: r.CallbackAuthReqID, Error: oauth.ErrExpiredToken, Description: "the request expired before the user decided",
		})
		if err != nil {
			return err
		}
		if notifyClosed {
			queued = true
			return s.enqueueNotification(ctx, tx, r, notify.NotifyClosed)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.changed(r, queued)
	return nil
}

// CancelRequest cancels the client's own pending request named by auth_req_id (our revocation
// extension). It reports whether a request was cancelled; unknown IDs, other clients' requests and
// requests that already ended are not errors (RFC 7009 section 2.2 answers 200 regardless).
func (s *Service) CancelRequest(ctx context.Context, c domain.Client, authReqID string) (bool, error) {
	r, err := s.store.GetRequestByAuthReqID(ctx, hashSecret(authReqID))
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.ClientID != c.ID || r.Status != domain.StatusPending {
		return false, nil
	}
	notified, err := s.shouldNotifySubject(ctx, r.Subject, notify.NotifyClosed)
	if err != nil {
		return false, err
	}
	now := s.now()
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		var err error
		r, err = tx.UpdateRequest(ctx, r.ID, func(req *domain.Request) error { return req.Cancel(now, c.ID) })
		if err != nil {
			return err
		}
		if notified {
			if err := s.enqueueNotification(ctx, tx, r, notify.NotifyClosed); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestCancelled, r, "", nil))
	})
	if errors.Is(err, domain.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.changed(r, notified)
	return true, nil
}

// Sweep expires overdue pending requests (so ping and push clients hear about them and devices stop
// showing them), forgets poll state of ended requests, and purges expired token records and nonces.
// The server calls it periodically; it is safe to run on several replicas at once.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	for {
		overdue, err := s.store.ListExpiredPending(ctx, now, 100)
		if err != nil {
			return err
		}
		for _, r := range overdue {
			if err := s.expire(ctx, r.ID, r.Subject); err != nil && !errors.Is(err, domain.ErrConflict) {
				return err
			}
		}
		if len(overdue) < 100 {
			break
		}
	}
	if err := s.sendReminders(ctx, now); err != nil {
		return err
	}
	s.polls.sweep(now)
	return s.store.PurgeExpired(ctx, now.Add(-clockSkew))
}

// sendReminders reminds users of pending requests that expire within ReminderBefore, once each,
// for requests that live at least twice that long (a five-minute request needs no reminder).
func (s *Service) sendReminders(ctx context.Context, now time.Time) error {
	if s.opts.ReminderBefore <= 0 {
		return nil
	}
	due, err := s.store.ListExpiredPending(ctx, now.Add(s.opts.ReminderBefore), 500)
	if err != nil {
		return err
	}
	for _, r := range due {
		if !r.RemindedAt.IsZero() || r.IsExpired(now) || r.ExpiresAt.Sub(r.CreatedAt) < 2*s.opts.ReminderBefore {
			continue
		}
		if err := s.remind(ctx, r, now); err != nil && !errors.Is(err, domain.ErrConflict) {
			return err
		}
	}
	return nil
}
