package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/oauth"
)

// cancelTimeout bounds the revocation sent when a caller gives up waiting.
const cancelTimeout = 5 * time.Second

// Request is what the agent asks a user to approve.
type Request struct {
	// User names who must approve: the login_hint (a subject, an email, or Auth0's iss_sub JSON).
	User string
	// BindingMessage is a short text shown on both sides so the user can tell requests apart
	// ("Buy 10 NVDA"). At most 128 printable characters on Countersign.
	BindingMessage string
	// AuthorizationDetails describe the action (RFC 9396): each element is marshalled to a JSON
	// object with a "type" (a struct, a map, or a json.RawMessage).
	AuthorizationDetails []any
	// Scope is space-separated; "openid" is added when missing because CIBA requires it.
	Scope string
	// Audience lists the APIs the token is for (the aud claim); empty means the issuer.
	Audience []string
	// RequestedExpiry asks for a request lifetime other than the server's default (whole seconds,
	// rounded up).
	RequestedExpiry time.Duration
	// UserCode is the user's secret code, for servers and users that require one.
	UserCode string
	// OnPending, if set, is called by RequestApproval once the request exists and before it
	// waits: the moment to tell the user to look at their device, and to show them
	// p.VerificationCode() when the server asks for number matching.
	OnPending func(p *Pending)
}

// form encodes the request as backchannel authentication parameters (CIBA section 7.1).
func (r Request) form() (url.Values, error) {
	if r.User == "" {
		return nil, errors.New("client: Request.User is required")
	}
	scope := strings.Fields(r.Scope)
	if !slices.Contains(scope, oauth.ScopeOpenID) {
		scope = append([]string{oauth.ScopeOpenID}, scope...)
	}
	f := url.Values{"scope": {strings.Join(scope, " ")}, "login_hint": {r.User}}
	if r.BindingMessage != "" {
		f.Set("binding_message", r.BindingMessage)
	}
	if len(r.AuthorizationDetails) > 0 {
		raw, err := json.Marshal(r.AuthorizationDetails)
		if err != nil {
			return nil, fmt.Errorf("client: authorization_details: %w", err)
		}
		f.Set("authorization_details", string(raw))
	}
	for _, a := range r.Audience {
		if a != "" {
			f.Add("audience", a)
		}
	}
	if r.RequestedExpiry > 0 {
		f.Set("requested_expiry", strconv.FormatInt(int64((r.RequestedExpiry+time.Second-1)/time.Second), 10))
	}
	if r.UserCode != "" {
		f.Set("user_code", r.UserCode)
	}
	return f, nil
}

// RequestApproval asks the user to approve r and blocks until they decide, the request expires,
// or ctx ends. It returns the token with the approved details, or an error: ErrDenied, ErrExpired,
// ErrNoAuthenticator and ErrRateLimited (test with errors.Is), *oauth.Error for other error
// responses, or ctx's error.
//
// When ctx ends first (or waiting fails for good), the request is cancelled on the server
// (revocation of the auth_req_id), so the user's device stops showing it.
func (c *Client) RequestApproval(ctx context.Context, r Request) (*Token, error) {
	p, err := c.Start(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.OnPending != nil {
		r.OnPending(p)
	}
	tok, err := p.Wait(ctx)
	if err == nil || p.Done() {
		return tok, err
	}
	// Nobody will collect the result: take the prompt off the user's device. The caller's context
	// may be over, so the cancellation gets its own short one.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	if cerr := p.Cancel(cctx); cerr != nil {
		return nil, errors.Join(err, fmt.Errorf("client: cancelling the request on the server: %w", cerr))
	}
	return nil, err
}

// Start sends the request (CIBA section 7) and returns at once with the pending request. Use
// Pending.Wait to block until the decision, Pending.Poll to check once, or marshal it to JSON and
// resume it later with Resume.
func (c *Client) Start(ctx context.Context, r Request) (*Pending, error) {
	form, err := r.form()
	if err != nil {
		return nil, err
	}
	var notificationToken string
	var reg *pingRegistration
	if c.cfg.Ping != nil {
		// A fresh unguessable token per request: the ping handler accepts a notification only with
		// the token of a request it waits for (CIBA section 10.2).
		notificationToken = randomToken(32)
		form.Set("client_notification_token", notificationToken)
		// Registered before the request exists: an instant decision (an auto-approval policy) may
		// ping before the answer below arrives.
		reg = c.cfg.Ping.register(notificationToken, c.now().Add(72*time.Hour))
	}
	// The request is sent without the caller's cancellation: a cancellation in flight would leave
	// a prompt on the user's device whose auth_req_id we never read, so nobody could withdraw it.
	// RequestApproval notices the cancellation right after and withdraws the request.
	var resp oauth.BackchannelResponse
	err = c.call(context.WithoutCancel(ctx), c.md.BackchannelAuthenticationEndpoint, form, nil, requestTimeout, &resp)
	if err == nil && resp.AuthReqID == "" {
		err = errors.New("client: the backchannel answer has no auth_req_id")
	}
	if err != nil {
		reg.unregister()
		return nil, startError(err)
	}
	now := c.now()
	interval := resp.Interval
	if interval <= 0 {
		interval = 5 // CIBA section 7.3: clients must assume 5 seconds
	}
	expiresIn := resp.ExpiresIn
	if expiresIn <= 0 {
		expiresIn = 300
	}
	p := &Pending{c: c, reg: reg, s: pendingState{
		Issuer: c.md.Issuer, ClientID: c.cfg.ClientID, AuthReqID: resp.AuthReqID,
		User: r.User, BindingMessage: r.BindingMessage,
		CreatedAt: now, ExpiresAt: now.Add(time.Duration(expiresIn) * time.Second),
		Interval: interval, NextPollAt: now.Add(time.Duration(interval) * time.Second),
		NotificationToken: notificationToken, VerificationCode: resp.VerificationCode,
	}}
	reg.started(resp.AuthReqID, p.s.ExpiresAt)
	return p, nil
}
