package authz

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/oauth"
)

// maxBindingMessageRunes is how long a binding message may be. CIBA leaves it to the server; 128
// characters is enough for "Approve payment of $50.00 to ExampleCorp" and short enough to show whole
// on a phone's lock screen.
const maxBindingMessageRunes = 128

// BackchannelParams are the parameters of a backchannel authentication request (CIBA section 7.1),
// as received. AuthorizationDetails is the JSON text of the array.
type BackchannelParams struct {
	Scope                   string
	ClientNotificationToken string
	ACRValues               string
	LoginHint               string
	LoginHintToken          string
	IDTokenHint             string
	BindingMessage          string
	UserCode                string
	RequestedExpiry         string
	AuthorizationDetails    string
	// Audience collects Auth0's audience and RFC 8707 resource values; empty strings mean absent.
	Audience []string
	// Request is a signed request object (CIBA section 7.1.1). When present, every other parameter
	// comes from it and the ones above are ignored.
	Request string
}

// BackchannelResult is what the backchannel endpoint answers.
type BackchannelResult struct {
	AuthReqID string
	ExpiresIn int
	Interval  int
	// VerificationCode is the number-matching code to show the user, when required.
	VerificationCode string
	// Request is the stored request, for the caller's logs and tests.
	Request domain.Request
}

// StartRequest validates a backchannel authentication request from an authenticated client and
// records it as pending, for the user's devices to decide.
func (s *Service) StartRequest(ctx context.Context, c domain.Client, p BackchannelParams) (BackchannelResult, error) {
	if !c.AllowsGrant(oauth.GrantTypeCIBA) {
		return BackchannelResult{}, oauth.NewError(oauth.ErrUnauthorizedClient, "client is not registered for the CIBA grant")
	}
	if c.RequestSigningAlg != "" {
		if p.Request == "" {
			return BackchannelResult{}, oauth.Errorf(oauth.ErrInvalidRequest, "client registered backchannel_authentication_request_signing_alg %s: send the parameters as a signed request object", c.RequestSigningAlg)
		}
		var err error
		if p, err = s.paramsFromRequestObject(ctx, c, p.Request); err != nil {
			return BackchannelResult{}, err
		}
	} else if p.Request != "" {
		return BackchannelResult{}, oauth.NewError(oauth.ErrInvalidRequest, "signed request objects are accepted only from clients that register backchannel_authentication_request_signing_alg")
	}

	scope, err := s.checkScope(c, p.Scope)
	if err != nil {
		return BackchannelResult{}, err
	}
	if err := checkBindingMessage(p.BindingMessage); err != nil {
		return BackchannelResult{}, err
	}
	lifetime, err := s.requestLifetime(p.RequestedExpiry)
	if err != nil {
		return BackchannelResult{}, err
	}
	if c.DeliveryMode == domain.DeliveryPing || c.DeliveryMode == domain.DeliveryPush {
		if p.ClientNotificationToken == "" {
			return BackchannelResult{}, oauth.Errorf(oauth.ErrInvalidRequest, "client_notification_token is required in %s mode", c.DeliveryMode)
		}
		if len(p.ClientNotificationToken) > 1024 {
			return BackchannelResult{}, oauth.NewError(oauth.ErrInvalidRequest, "client_notification_token is longer than 1024 bytes")
		}
	}
	details, err := s.opts.DetailTypes.Parse([]byte(p.AuthorizationDetails), c)
	if err != nil {
		return BackchannelResult{}, err
	}
	audience, err := checkAudience(c, p.Audience)
	if err != nil {
		return BackchannelResult{}, err
	}

	user, err := s.resolveUser(ctx, c, Hint{LoginHint: p.LoginHint, LoginHintToken: p.LoginHintToken, IDTokenHint: p.IDTokenHint})
	if err != nil {
		return BackchannelResult{}, err
	}
	if c.UserCodeParameter && user.UserCodeHash != "" {
		if p.UserCode == "" {
			return BackchannelResult{}, oauth.NewError(oauth.ErrMissingUserCode, "this user requires a user_code")
		}
		if !checkUserCode(user.UserCodeHash, p.UserCode) {
			return BackchannelResult{}, oauth.NewError(oauth.ErrInvalidUserCode, "user_code is wrong")
		}
	}
	devices, err := s.store.CountActiveDevices(ctx, user.Subject)
	if err != nil {
		return BackchannelResult{}, err
	}
	if devices == 0 {
		// invalid_request is what Auth0 clients read as "no authenticator enrolled".
		e := oauth.Errorf(oauth.ErrInvalidRequest, "user %s has no enrolled authenticator device; an operator can invite them with `countersign users invite %s`", user.Subject, user.Subject)
		e.Reason = oauth.ReasonNoAuthenticator
		return BackchannelResult{}, e
	}

	now := s.now()
	if err := s.checkReportHold(ctx, c, user, now); err != nil {
		return BackchannelResult{}, err
	}
	numbers, verify := s.opts.DetailTypes.requirements(details)
	numbers = numbers || s.opts.RequireNumberMatching[c.ID]
	verify = verify || s.opts.RequireUserVerification[c.ID]
	authReqID := randomID(32)
	interval := max(s.opts.PollInterval.Round(time.Second), time.Second)
	req := domain.Request{
		ID:                      randomID(16),
		AuthReqIDHash:           hashSecret(authReqID),
		CallbackAuthReqID:       callbackAuthReqID(c, authReqID),
		ClientID:                c.ID,
		ClientName:              clientDisplayName(c),
		Subject:                 user.Subject,
		Scope:                   scope,
		Audience:                audience,
		BindingMessage:          p.BindingMessage,
		AuthorizationDetails:    details,
		ACRValues:               strings.Fields(p.ACRValues),
		DeliveryMode:            c.DeliveryMode,
		NotificationToken:       p.ClientNotificationToken,
		Status:                  domain.StatusPending,
		CreatedAt:               now,
		ExpiresAt:               now.Add(lifetime),
		Interval:                interval,
		RequireUserVerification: verify,
	}
	if numbers {
		req.VerificationCode = twoDigits()
	}
	notified, err := s.shouldNotify(ctx, user, notify.NotifyRequest)
	if err != nil {
		return BackchannelResult{}, err
	}
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		pending, recent, err := tx.CountRequests(ctx, user.Subject, now, now.Add(-time.Minute))
		if err != nil {
			return err
		}
		if pending >= s.opts.MaxPendingPerUser {
			e := oauth.Errorf(oauth.ErrAccessDenied, "user %s already has %d pending requests, the most allowed; wait for them to be decided or cancel some", user.Subject, pending)
			e.Reason = oauth.ReasonRateLimited
			return e
		}
		if recent >= s.opts.MaxRequestsPerMinute {
			e := oauth.Errorf(oauth.ErrAccessDenied, "user %s received %d requests in the last minute, the most allowed; try again later", user.Subject, recent)
			e.RetryAfter = 60
			e.Reason = oauth.ReasonRateLimited
			return e
		}
		if err := tx.CreateRequest(ctx, req); err != nil {
			return err
		}
		if notified {
			if err := s.enqueueNotification(ctx, tx, req, notify.NotifyRequest); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestCreated, req, "", map[string]any{
			"binding_message": req.BindingMessage,
			"types":           detailTypes(details),
			"expires_at":      req.ExpiresAt,
		}))
	})
	if err != nil {
		return BackchannelResult{}, err
	}
	s.obs.RequestChanged(req)
	if notified {
		s.obs.OutboxEnqueued()
	}
	return BackchannelResult{
		AuthReqID:        authReqID,
		ExpiresIn:        int(lifetime / time.Second),
		Interval:         int(interval / time.Second),
		VerificationCode: req.VerificationCode,
		Request:          req,
	}, nil
}

func clientDisplayName(c domain.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func (s *Service) checkScope(c domain.Client, raw string) ([]string, error) {
	scope := strings.Fields(raw)
	seen := map[string]bool{}
	out := scope[:0]
	for _, sc := range scope {
		if seen[sc] {
			continue
		}
		seen[sc] = true
		if !c.AllowsScope(sc) {
			return nil, oauth.Errorf(oauth.ErrInvalidScope, "client may not request scope %q", sc)
		}
		out = append(out, sc)
	}
	if !seen[oauth.ScopeOpenID] {
		return nil, oauth.NewError(oauth.ErrInvalidScope, "scope must include openid")
	}
	return out, nil
}

// checkBindingMessage accepts any printable Unicode (letters, digits, punctuation, symbols and
// spaces) up to maxBindingMessageRunes characters.
func checkBindingMessage(m string) error {
	if m == "" {
		return nil
	}
	if !utf8.ValidString(m) {
		return oauth.NewError(oauth.ErrInvalidBindingMessage, "binding_message is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(m); n > maxBindingMessageRunes {
		return oauth.Errorf(oauth.ErrInvalidBindingMessage, "binding_message has %d characters; at most %d are allowed", n, maxBindingMessageRunes)
	}
	for _, r := range m {
		if !unicode.IsPrint(r) && !unicode.Is(unicode.Zs, r) {
			return oauth.Errorf(oauth.ErrInvalidBindingMessage, "binding_message contains the non-printable character %U", r)
		}
	}
	if strings.TrimSpace(m) == "" {
		return oauth.NewError(oauth.ErrInvalidBindingMessage, "binding_message is only spaces")
	}
	return nil
}

func (s *Service) requestLifetime(raw string) (time.Duration, error) {
	if raw == "" {
		return min(s.opts.DefaultExpiry, s.opts.MaxExpiry), nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n <= 0 {
		return 0, oauth.Errorf(oauth.ErrInvalidRequest, "requested_expiry must be a positive integer number of seconds, got %q", raw)
	}
	if n > int64(s.opts.MaxExpiry/time.Second) {
		return s.opts.MaxExpiry, nil
	}
	return time.Duration(n) * time.Second, nil
}

func checkAudience(c domain.Client, values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, aud := range strings.Fields(v) {
			if seen[aud] {
				continue
			}
			seen[aud] = true
			if !c.AllowsAudience(aud) {
				return nil, oauth.Errorf(oauth.ErrInvalidTarget, "client may not request a token for audience %q", aud)
			}
			out = append(out, aud)
		}
	}
	return out, nil
}

// requestObjectClaims are the claims of a signed backchannel request object. Parameters may be
// strings or, where JSON allows it, numbers and arrays.
type requestObjectClaims struct {
	jwt.Claims
	Scope                   string          `json:"scope"`
	ClientNotificationToken string          `json:"client_notification_token"`
	ACRValues               string          `json:"acr_values"`
	LoginHint               string          `json:"login_hint"`
	LoginHintToken          string          `json:"login_hint_token"`
	IDTokenHint             string          `json:"id_token_hint"`
	BindingMessage          string          `json:"binding_message"`
	UserCode                string          `json:"user_code"`
	RequestedExpiry         json.RawMessage `json:"requested_expiry"`
	AuthorizationDetails    json.RawMessage `json:"authorization_details"`
	Audience2               json.RawMessage `json:"audience"`
	Resource                json.RawMessage `json:"resource"`
}

// paramsFromRequestObject verifies a signed request object (CIBA section 7.1.1) and returns the
// parameters it carries.
func (s *Service) paramsFromRequestObject(ctx context.Context, c domain.Client, raw string) (BackchannelParams, error) {
	bad := func(format string, args ...any) error {
		return oauth.Errorf(oauth.ErrInvalidRequest, "request object: "+format, args...)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(c.RequestSigningAlg)})
	if err != nil {
		return BackchannelParams{}, bad("must be a JWT signed with %s: %v", c.RequestSigningAlg, err)
	}
	var claims requestObjectClaims
	if err := s.verifyClientJWT(ctx, c, tok, &claims); err != nil {
		return BackchannelParams{}, bad("signature does not verify with the client's keys")
	}
	now := s.clock.Now()
	switch {
	case claims.Issuer != c.ID:
		return BackchannelParams{}, bad("iss must be the client_id")
	case !s.audienceIsUs(claims.Audience, strings.TrimSuffix(s.opts.Issuer, "/")+"/bc-authorize"):
		return BackchannelParams{}, bad("aud must be this issuer")
	case claims.Expiry == nil || claims.IssuedAt == nil || claims.ID == "":
		return BackchannelParams{}, bad("exp, iat and jti are required")
	case !now.Before(claims.Expiry.Time().Add(clockSkew)):
		return BackchannelParams{}, bad("has expired")
	case claims.Expiry.Time().Sub(now) > maxAssertionLifetime:
		return BackchannelParams{}, bad("exp is more than %s away", maxAssertionLifetime)
	case claims.NotBefore != nil && now.Add(clockSkew).Before(claims.NotBefore.Time()):
		return BackchannelParams{}, bad("is not valid yet (nbf)")
	case now.Add(clockSkew).Before(claims.IssuedAt.Time()):
		return BackchannelParams{}, bad("iat is in the future")
	}
	if err := s.store.UseNonce(ctx, "request_object:"+c.ID+":"+claims.ID, claims.Expiry.Time().Add(clockSkew)); err != nil {
		if errors.Is(err, domain.ErrAlreadyExists) {
			return BackchannelParams{}, bad("jti was already used")
		}
		return BackchannelParams{}, err
	}
	p := BackchannelParams{
		Scope: claims.Scope, ClientNotificationToken: claims.ClientNotificationToken, ACRValues: claims.ACRValues,
		LoginHint: claims.LoginHint, LoginHintToken: claims.LoginHintToken, IDTokenHint: claims.IDTokenHint,
		BindingMessage: claims.BindingMessage, UserCode: claims.UserCode,
	}
	if p.RequestedExpiry, err = numberOrString(claims.RequestedExpiry); err != nil {
		return BackchannelParams{}, bad("requested_expiry must be a number or a string")
	}
	if len(claims.AuthorizationDetails) > 0 {
		var asString string
		if json.Unmarshal(claims.AuthorizationDetails, &asString) == nil {
			p.AuthorizationDetails = asString
		} else {
			p.AuthorizationDetails = string(claims.AuthorizationDetails)
		}
	}
	for _, rawAud := range []json.RawMessage{claims.Audience2, claims.Resource} {
		values, err := stringOrStrings(rawAud)
		if err != nil {
			return BackchannelParams{}, bad("audience and resource must be strings or arrays of strings")
		}
		p.Audience = append(p.Audience, values...)
	}
	return p, nil
}

func numberOrString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return "", err
	}
	return str, nil
}

func stringOrStrings(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("not a string or array of strings")
	}
	return many, nil
}

func detailTypes(details json.RawMessage) []string {
	var els []struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(details, &els)
	out := make([]string, 0, len(els))
	for _, e := range els {
		out = append(out, e.Type)
	}
	return out
}

// auditEvent builds an audit event about a request.
func auditEvent(now time.Time, typ string, r domain.Request, deviceID string, detail map[string]any) domain.AuditEvent {
	var raw json.RawMessage
	if len(detail) > 0 {
		raw, _ = json.Marshal(detail)
	}
	return domain.AuditEvent{
		Time: now, Type: typ, Subject: r.Subject, ClientID: r.ClientID, RequestID: r.ID, DeviceID: deviceID, Detail: raw,
	}
}

// checkReportHold refuses a client's requests to a user who recently reported one of its requests
// as not theirs.
func (s *Service) checkReportHold(ctx context.Context, c domain.Client, u domain.User, now time.Time) error {
	reports, err := s.store.ListAudit(ctx, domain.AuditFilter{Subject: u.Subject, ClientID: c.ID, Type: domain.AuditRequestReported, Limit: 1})
	if err != nil {
		return err
	}
	if len(reports) == 0 {
		return nil
	}
	until := reports[0].Time.Add(s.opts.ReportHold)
	if !now.Before(until) {
		return nil
	}
	e := oauth.Errorf(oauth.ErrAccessDenied, "user %s reported a request from this client as not theirs; requests are held until %s", u.Subject, until.UTC().Format(time.RFC3339))
	e.Reason = oauth.ReasonReported
	e.RetryAfter = int(until.Sub(now)/time.Second) + 1
	return e
}

// twoDigits is a number-matching code, "00" to "99".
func twoDigits() string {
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if b[0] < 200 { // no modulo bias
			return fmt.Sprintf("%02d", b[0]%100)
		}
	}
}

// callbackAuthReqID keeps the auth_req_id only when a callback will have to name it.
func callbackAuthReqID(c domain.Client, authReqID string) string {
	if c.DeliveryMode == domain.DeliveryPing || c.DeliveryMode == domain.DeliveryPush {
		return authReqID
	}
	return ""
}
