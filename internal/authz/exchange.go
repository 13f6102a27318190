package authz

import (
	"context"
	"errors"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

func invalidGrant(desc string) *oauth.Error { return oauth.NewError(oauth.ErrInvalidGrant, desc) }

// ExchangeAuthReqID answers a CIBA token request (poll and ping modes, CIBA sections 10.1 and 11).
// When wait is positive and the request is still pending, the answer is held until the request
// changes or wait passes (the Prefer: wait extension); wait is capped by MaxLongPoll.
func (s *Service) ExchangeAuthReqID(ctx context.Context, c domain.Client, authReqID string, wait time.Duration) (oauth.TokenResponse, error) {
	if !c.AllowsGrant(oauth.GrantTypeCIBA) {
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrUnauthorizedClient, "client is not registered for the CIBA grant")
	}
	if c.DeliveryMode == domain.DeliveryPush {
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrUnauthorizedClient, "client uses push delivery: tokens are sent to its notification endpoint, not polled")
	}
	if authReqID == "" {
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrInvalidRequest, "auth_req_id is required")
	}
	r, err := s.store.GetRequestByAuthReqID(ctx, hashSecret(authReqID))
	if errors.Is(err, domain.ErrNotFound) {
		return oauth.TokenResponse{}, invalidGrant("auth_req_id is unknown")
	}
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	if r.ClientID != c.ID {
		// Same answer as unknown: a client learns nothing about other clients' requests.
		return oauth.TokenResponse{}, invalidGrant("auth_req_id is unknown")
	}

	now := s.now()
	if r.Status == domain.StatusPending && !r.IsExpired(now) {
		tooSoon, interval := s.polls.poll(r.ID, now, r.ExpiresAt, r.Interval, s.opts.SlowDownStep)
		if tooSoon {
			e := oauth.Errorf(oauth.ErrSlowDown, "polled sooner than the interval; wait at least %d seconds between polls", int(interval/time.Second))
			e.RetryAfter = int(interval / time.Second)
			e.Interval = e.RetryAfter
			return oauth.TokenResponse{}, e
		}
		if wait = min(wait, s.opts.MaxLongPoll); wait > 0 {
			if r, err = s.waitForChange(ctx, r, wait); err != nil {
				return oauth.TokenResponse{}, err
			}
			held := s.now().Sub(now)
			now = s.now()
			// A poll held at least an interval already kept the client waiting that long, so it may
			// poll again at once; a shorter hold counts from its end.
			last := now
			if held >= interval {
				last = now.Add(-interval)
			}
			s.polls.touch(r.ID, last)
		}
	}
	return s.answerPoll(ctx, c, r, now)
}

// waitForChange holds a long poll until the request is notified, wait passes or ctx ends, then
// rereads the request.
func (s *Service) waitForChange(ctx context.Context, r domain.Request, wait time.Duration) (domain.Request, error) {
	changed, cancel := s.hub.Subscribe(r.ID)
	defer cancel()
	// Re-read after subscribing, so a decision between the first read and the subscription is not
	// missed.
	fresh, err := s.store.GetRequest(ctx, r.ID)
	if err != nil {
		return r, err
	}
	if fresh.Status != domain.StatusPending {
		return fresh, nil
	}
	timer := time.NewTimer(min(wait, time.Until(r.ExpiresAt)+time.Millisecond))
	defer timer.Stop()
	select {
	case <-changed:
	case <-timer.C:
	case <-ctx.Done():
		return r, ctx.Err()
	}
	return s.store.GetRequest(ctx, r.ID)
}

func (s *Service) answerPoll(ctx context.Context, c domain.Client, r domain.Request, now time.Time) (oauth.TokenResponse, error) {
	switch r.Status {
	case domain.StatusPending:
		if r.IsExpired(now) {
			if err := s.expire(ctx, r.ID, r.Subject); err != nil && !errors.Is(err, domain.ErrConflict) {
				return oauth.TokenResponse{}, err
			}
			return oauth.TokenResponse{}, s.expiredError(c)
		}
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrAuthorizationPending, "the user has not decided yet")
	case domain.StatusDenied:
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrAccessDenied, "the user denied the request")
	case domain.StatusExpired:
		return oauth.TokenResponse{}, s.expiredError(c)
	case domain.StatusCancelled:
		return oauth.TokenResponse{}, invalidGrant("the request was cancelled")
	case domain.StatusApproved:
		if !r.RedeemedAt.IsZero() {
			return oauth.TokenResponse{}, invalidGrant("auth_req_id was already redeemed")
		}
		if r.IsExpired(now) {
			return oauth.TokenResponse{}, s.expiredError(c)
		}
		return s.redeem(ctx, c, r, now)
	}
	return oauth.TokenResponse{}, errors.New("request in unknown state " + string(r.Status))
}

func (s *Service) expiredError(c domain.Client) error {
	if c.ExpiredAsAccessDenied {
		return oauth.NewError(oauth.ErrAccessDenied, "the request expired before the user decided")
	}
	return oauth.NewError(oauth.ErrExpiredToken, "the request expired before the user decided")
}

// redeem issues tokens for an approved request, once. The tokens are signed before the transaction
// (signing holds no lock) and handed out only if the transaction that marks the request redeemed
// commits, so two racing polls can never both get tokens.
func (s *Service) redeem(ctx context.Context, c domain.Client, r domain.Request, now time.Time) (oauth.TokenResponse, error) {
	out, err := s.mint(ctx, c, grantOf(r), now, "")
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		updated, err := tx.UpdateRequest(ctx, r.ID, func(req *domain.Request) error { return req.Redeem(now, c.ID) })
		if err != nil {
			return err
		}
		r = updated
		for _, t := range out.records {
			if err := tx.CreateToken(ctx, t); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestRedeemed, r, "", map[string]any{"jti": out.records[0].ID}))
	})
	switch {
	case errors.Is(err, domain.ErrAlreadyRedeemed), errors.Is(err, domain.ErrWrongClient):
		return oauth.TokenResponse{}, invalidGrant("auth_req_id was already redeemed")
	case errors.Is(err, domain.ErrRequestExpired):
		return oauth.TokenResponse{}, s.expiredError(c)
	case err != nil:
		return oauth.TokenResponse{}, err
	}
	s.polls.forget(r.ID)
	s.obs.RequestChanged(r)
	return out.resp, nil
}
