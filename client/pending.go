package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/countersign/countersign/oauth"
)

// slowDownStep is how much a slow_down answer adds to the interval (CIBA section 11, RFC 8628
// section 3.5), unless the server asks for more.
const slowDownStep = 5

// pingFallback is how often a ping-mode client polls anyway, in case a notification is lost.
const pingFallback = 30 * time.Second

// abandonedPollMargin is added to the interval after a poll that got no answer.
const abandonedPollMargin = time.Second

// maxTransientFailures is how many failed polls in a row (network errors, 5xx) Wait rides out
// before it gives up: enough for a server restart, not so many that an outage hides for minutes.
const maxTransientFailures = 5

// Pending is a backchannel request waiting for the user's decision. Its methods are safe for
// concurrent use.
//
// It marshals to JSON (encoding/json) so that another process can resume it with Client.Resume,
// the way Auth0's interrupts let a chat application answer later. The JSON holds the auth_req_id
// and, in ping mode, the client_notification_token: keep it as you keep the client's credentials.
type Pending struct {
	c   *Client
	reg *pingRegistration // ping mode only

	mu   sync.Mutex
	s    pendingState
	done bool // a final answer arrived, or the request was cancelled
}

// pendingState is what a Pending is made of, in its JSON form.
type pendingState struct {
	Issuer         string    `json:"issuer"`
	ClientID       string    `json:"client_id"`
	AuthReqID      string    `json:"auth_req_id"`
	User           string    `json:"user,omitempty"`
	BindingMessage string    `json:"binding_message,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	// Interval is the poll interval in seconds, grown by slow_down answers.
	Interval   int       `json:"interval"`
	LastPollAt time.Time `json:"last_poll_at,omitzero"`
	// NextPollAt is the earliest time the next poll keeps to the interval.
	NextPollAt        time.Time `json:"next_poll_at"`
	NotificationToken string    `json:"client_notification_token,omitempty"`
	VerificationCode  string    `json:"verification_code,omitempty"`
}

func (s pendingState) interval() time.Duration { return time.Duration(s.Interval) * time.Second }

// MarshalJSON writes the pending request's state.
func (p *Pending) MarshalJSON() ([]byte, error) { return json.Marshal(p.state()) }

// Resume restores a Pending marshalled by a client of the same issuer and client_id (in this or
// another process). In ping mode the client's PingHandler starts waiting for its notification.
func (c *Client) Resume(data []byte) (*Pending, error) {
	var s pendingState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("client: resume: %w", err)
	}
	switch {
	case s.AuthReqID == "":
		return nil, errors.New("client: resume: no auth_req_id")
	case s.Issuer != c.md.Issuer || s.ClientID != c.cfg.ClientID:
		return nil, fmt.Errorf("client: resume: the request belongs to client %q of %q, not %q of %q", s.ClientID, s.Issuer, c.cfg.ClientID, c.md.Issuer)
	}
	if s.Interval <= 0 {
		s.Interval = 5
	}
	p := &Pending{c: c, s: s}
	if c.cfg.Ping != nil && s.NotificationToken != "" {
		p.reg = c.cfg.Ping.register(s.NotificationToken, s.ExpiresAt)
		p.reg.started(s.AuthReqID, s.ExpiresAt)
	}
	return p, nil
}

func (p *Pending) state() pendingState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// Done reports whether the request has had its final answer (a token, a denial, an expiry, an
// error that polling again cannot change) or was cancelled: polling it again is pointless.
func (p *Pending) Done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// AuthReqID returns the request's auth_req_id.
func (p *Pending) AuthReqID() string { return p.state().AuthReqID }

// User returns the user asked (the Request's User).
func (p *Pending) User() string { return p.state().User }

// BindingMessage returns the Request's binding message.
func (p *Pending) BindingMessage() string { return p.state().BindingMessage }

// VerificationCode returns the number-matching code when the server requires one for this
// request: show it to the user, who must pick the same code on their device to approve. Empty
// otherwise.
func (p *Pending) VerificationCode() string { return p.state().VerificationCode }

// ExpiresAt returns when the request expires if nobody decides.
func (p *Pending) ExpiresAt() time.Time { return p.state().ExpiresAt }

// Interval returns the current minimum time between polls (it grows with slow_down).
func (p *Pending) Interval() time.Duration { return p.state().interval() }

// NextPoll returns the earliest time the next Poll keeps to the interval. Polling sooner gets
// slow_down, which makes the interval longer for the rest of the request.
func (p *Pending) NextPoll() time.Time { return p.state().NextPollAt }

// Notified returns a channel closed when the server's ping notification for this request arrives,
// or nil when the client is not in ping mode. After it closes, Poll returns the outcome.
func (p *Pending) Notified() <-chan struct{} {
	if p.reg == nil {
		return nil
	}
	return p.reg.fired
}

// Poll asks the token endpoint once, without waiting. It returns the token once the user approved;
// an error for which errors.Is(err, ErrPending) holds while they have not decided (including
// slow_down, which lengthens Interval); or the outcome's error, as RequestApproval does.
//
// Poll does not wait for NextPoll: a caller polling on its own schedule should.
func (p *Pending) Poll(ctx context.Context) (*Token, error) { return p.poll(ctx, 0) }

// poll asks once; with wait > 0 it asks the server to hold the answer up to wait (RFC 7240).
func (p *Pending) poll(ctx context.Context, wait time.Duration) (*Token, error) {
	c := p.c
	form := url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {p.AuthReqID()}}
	var header map[string][]string
	timeout := requestTimeout
	if wait > 0 {
		header = map[string][]string{"Prefer": {"wait=" + strconv.Itoa(int(wait/time.Second))}}
		timeout += wait
	}
	var resp oauth.TokenResponse
	err := c.call(ctx, c.md.TokenEndpoint, form, header, timeout, &resp)
	now := c.now()

	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.LastPollAt = now
	// The server counts the interval from when it answered (a long poll ends later than it began).
	p.s.NextPollAt = now.Add(p.s.interval())
	if err == nil {
		p.finish()
		return newToken(resp, now)
	}
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		// No answer: the server may still see this poll, and later than we gave up on it (a long
		// poll abandoned with ctx). Leave a margin so the next one is not too soon for it.
		var he *HTTPError
		if !errors.As(err, &he) {
			p.s.NextPollAt = p.s.NextPollAt.Add(abandonedPollMargin)
		}
		return nil, err
	}
	switch oe.Code {
	case oauth.ErrAuthorizationPending:
		return nil, &outcomeError{kind: ErrPending, oe: oe}
	case oauth.ErrSlowDown:
		iv := max(p.s.Interval+slowDownStep, oe.Interval, oe.RetryAfter)
		p.s.Interval = iv
		p.s.NextPollAt = now.Add(time.Duration(iv) * time.Second)
		return nil, &outcomeError{kind: ErrPending, oe: oe}
	case oauth.ErrAccessDenied:
		p.finish()
		return nil, &outcomeError{kind: ErrDenied, oe: oe}
	case oauth.ErrExpiredToken:
		p.finish()
		return nil, &outcomeError{kind: ErrExpired, oe: oe}
	case oauth.ErrServerError, oauth.ErrTemporarilyUnavailable:
		return nil, oe // worth another try
	}
	p.finish() // invalid_grant (unknown, cancelled, redeemed), invalid_client, ...: final
	return nil, oe
}

// finish records a final answer; p.mu is held.
func (p *Pending) finish() {
	p.done = true
	p.reg.unregister()
}

// Wait blocks until the user decides, the request expires, or ctx ends, polling as CIBA asks: at
// the interval, held by the server when it offers the Prefer: wait long poll, or woken by the
// ping notification in ping mode. Network errors and 5xx answers are retried a few times.
//
// Unlike RequestApproval, Wait does not cancel the request when ctx ends: another Wait (perhaps in
// another process, after Resume) may pick it up. Call Cancel to withdraw it.
func (p *Pending) Wait(ctx context.Context) (*Token, error) {
	c := p.c
	failures := 0
	usePing := p.reg != nil
	for {
		s := p.state()
		now := c.now()
		lp := c.longPollWait(s.ExpiresAt, now)
		delay := s.NextPollAt.Sub(now)
		var wake <-chan struct{}
		switch {
		case usePing:
			wake = p.reg.fired
			if p.reg.isFired() {
				delay = 0 // decided: a poll after the decision is never too soon
			} else {
				last := s.LastPollAt
				if last.IsZero() {
					last = s.CreatedAt
				}
				delay = max(delay, last.Add(pingFallback).Sub(now))
			}
		case lp > 0 && s.LastPollAt.IsZero():
			delay = 0 // the server never answers a first poll with slow_down
		}
		if err := c.wait(ctx, delay, wake); err != nil {
			return nil, err
		}
		pinged := usePing && p.reg.isFired()
		tok, err := p.poll(ctx, lp)
		switch {
		case err == nil:
			return tok, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrPending):
			failures = 0
			if pinged {
				usePing = false // a notification for an undecided request: trust polling instead
			}
			continue
		case transient(ctx, err) && failures < maxTransientFailures:
			failures++
			p.backoff(failures, err)
			continue
		}
		return nil, err
	}
}

// backoff delays the next poll after the n-th failure in a row, by Retry-After when the server
// sent one.
func (p *Pending) backoff(n int, err error) {
	retry := 0
	var oe *oauth.Error
	var he *HTTPError
	switch {
	case errors.As(err, &oe):
		retry = oe.RetryAfter
	case errors.As(err, &he):
		retry = he.RetryAfter
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := max(time.Duration(n)*p.s.interval(), time.Duration(retry)*time.Second)
	p.s.NextPollAt = p.c.now().Add(d)
}

// Cancel withdraws the request (our revocation extension: the auth_req_id is revoked with
// token_type_hint=auth_req_id), so the user's device stops showing it. Cancelling a request that
// already ended is not an error.
func (p *Pending) Cancel(ctx context.Context) error {
	c := p.c
	if c.md.RevocationEndpoint == "" {
		return errors.New("client: the server has no revocation endpoint to cancel requests with")
	}
	form := url.Values{"token": {p.AuthReqID()}, "token_type_hint": {"auth_req_id"}}
	if err := c.call(ctx, c.md.RevocationEndpoint, form, nil, requestTimeout, nil); err != nil {
		return err
	}
	p.mu.Lock()
	p.finish()
	p.mu.Unlock()
	return nil
}

// longPollWait is how long to ask the server to hold a poll: its advertised maximum, no longer
// than the request has left, and short enough for the HTTP client's own timeout. Zero means do
// not long poll.
func (c *Client) longPollWait(expires, now time.Time) time.Duration {
	if c.cfg.DisableLongPoll || c.cfg.Ping != nil || c.md.LongPollMaxWait <= 0 {
		return 0
	}
	w := time.Duration(c.md.LongPollMaxWait) * time.Second
	// One second past the expiry, so the held poll answers expired_token itself.
	if left := expires.Sub(now).Truncate(time.Second) + time.Second; left < w {
		w = left
	}
	if t := c.hc.Timeout; t > 0 && w > t-5*time.Second {
		w = (t - 5*time.Second).Truncate(time.Second)
	}
	if w < time.Second {
		return 0
	}
	return w
}
