package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/oauth"
)

// Device API error codes, beside the OAuth ones (invalid_request, invalid_token). The server maps
// them to 404 and 409.
const (
	ErrNotFound = "not_found"
	ErrConflict = "conflict"
)

// JWS typ values of the device API: each signed object says what it is, so one can never be replayed
// as another.
const (
	TypDeviceAuth = "countersign-device+jwt"
	TypDecision   = "countersign-decision+jwt"
	TypEnrollment = "countersign-enroll+jwt"
)

// deviceJWTWindow is how far a device's iat may be from our clock.
const deviceJWTWindow = 5 * time.Minute

// EnrollmentURL is where an invitation sends the user; the code travels in the fragment so that it
// never reaches server or proxy logs.
func (s *Service) EnrollmentURL(code string) string {
	return s.opts.Issuer + "enroll#code=" + url.QueryEscape(code)
}

// ParseEnrollmentURL splits an invitation URL into the issuer and the code.
func ParseEnrollmentURL(raw string) (issuer, code string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", "", fmt.Errorf("not an enrollment URL: %q", raw)
	}
	frag, err := url.ParseQuery(u.Fragment)
	if err != nil || frag.Get("code") == "" {
		return "", "", errors.New("the enrollment URL has no code (expected ...#code=...)")
	}
	if !strings.HasSuffix(u.Path, "/enroll") {
		return "", "", errors.New("the enrollment URL path must end in /enroll")
	}
	u.Path = strings.TrimSuffix(u.Path, "enroll")
	u.Fragment, u.RawQuery = "", ""
	return u.String(), frag.Get("code"), nil
}

// AddUser creates or updates a user. A non-empty userCode is stored as a slow hash.
func (s *Service) AddUser(ctx context.Context, u domain.User, userCode string) error {
	now := s.now()
	if userCode != "" {
		h, err := HashUserCode(userCode)
		if err != nil {
			return err
		}
		u.UserCodeHash = h
	}
	if existing, err := s.store.GetUser(ctx, u.Subject); err == nil {
		u.CreatedAt = existing.CreatedAt
		if userCode == "" {
			u.UserCodeHash = existing.UserCodeHash
		}
	} else if errors.Is(err, domain.ErrNotFound) {
		u.CreatedAt = now
	} else {
		return err
	}
	u.UpdatedAt = now
	return s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.PutUser(ctx, u); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditUserCreated, Subject: u.Subject})
	})
}

// Invite creates a one-time enrollment URL for the user.
func (s *Service) Invite(ctx context.Context, subject string) (string, time.Time, error) {
	if _, err := s.store.GetUser(ctx, subject); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return "", time.Time{}, fmt.Errorf("no user %q (add one with `countersign users add %s`)", subject, subject)
		}
		return "", time.Time{}, err
	}
	now := s.now()
	code := randomID(32)
	e := domain.Enrollment{CodeHash: hashSecret(code), Subject: subject, CreatedAt: now, ExpiresAt: now.Add(s.opts.EnrollmentTTL)}
	err := s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.CreateEnrollment(ctx, e); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditUserInvited, Subject: subject,
			Detail: mustJSON(map[string]any{"expires_at": e.ExpiresAt})})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return s.EnrollmentURL(code), e.ExpiresAt, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// EnrollmentClaims is the payload of the JWS a new device sends to enroll. The JWS header carries
// the device's public key (jwk) and the JWS is signed with the matching private key, which proves the
// device holds it.
type EnrollmentClaims struct {
	Audience string `json:"aud"`
	Code     string `json:"code"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	IssuedAt int64  `json:"iat"`
}

// Enrolled is the answer to a successful enrollment.
type Enrolled struct {
	DeviceID string `json:"device_id"`
	Subject  string `json:"sub"`
	Issuer   string `json:"issuer"`
}

func deviceError(code, format string, args ...any) *oauth.Error {
	return oauth.Errorf(code, format, args...)
}

// Enroll redeems an invitation: it verifies the signed enrollment, marks the code used and stores
// the device, atomically.
func (s *Service) Enroll(ctx context.Context, signed string) (Enrolled, error) {
	jws, err := jose.ParseSigned(signed, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment must be a compact JWS signed with ES256")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TypEnrollment {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment JWS typ must be %s", TypEnrollment)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.IsPublic() {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment JWS must carry the device's public key in its jwk header")
	}
	pub, ok := jwk.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "device keys must be EC P-256")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment signature does not verify")
	}
	var claims EnrollmentClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment payload: %s", jsonErrorText(err))
	}
	now := s.now()
	if err := s.checkDeviceClaims(claims.Audience, claims.IssuedAt, now); err != nil {
		return Enrolled{}, err
	}
	if claims.Code == "" {
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment code is missing")
	}
	name := cleanDisplay(claims.Name)
	if name == "" {
		name = "authenticator"
	}
	kind := cleanDisplay(claims.Kind)
	if kind == "" {
		kind = "app"
	}
	publicJWK, _ := jose.JSONWebKey{Key: pub, Algorithm: string(jose.ES256), Use: "sig"}.MarshalJSON()
	dev := domain.Device{ID: randomID(16), Name: truncateRunes(name, 64), Kind: truncateRunes(kind, 32), PublicKey: publicJWK, CreatedAt: now}
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		e, err := tx.UpdateEnrollment(ctx, hashSecret(claims.Code), func(e *domain.Enrollment) error { return e.Use(now, dev.ID) })
		if err != nil {
			return err
		}
		dev.Subject = e.Subject
		if err := tx.CreateDevice(ctx, dev); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditDeviceEnrolled, Subject: dev.Subject, DeviceID: dev.ID,
			Detail: mustJSON(map[string]any{"name": dev.Name, "kind": dev.Kind})})
	})
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment code is unknown; ask for a new invitation")
	case errors.Is(err, domain.ErrEnrollmentUsed):
		return Enrolled{}, deviceError(ErrConflict, "enrollment code was already used; ask for a new invitation")
	case errors.Is(err, domain.ErrEnrollmentExpired):
		return Enrolled{}, deviceError(oauth.ErrInvalidRequest, "enrollment code has expired; ask for a new invitation")
	case err != nil:
		return Enrolled{}, err
	}
	return Enrolled{DeviceID: dev.ID, Subject: dev.Subject, Issuer: s.opts.Issuer}, nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

func (s *Service) checkDeviceClaims(aud string, iat int64, now time.Time) error {
	if aud != s.opts.Issuer {
		return deviceError(oauth.ErrInvalidRequest, "aud must be the issuer %s", s.opts.Issuer)
	}
	if iat == 0 {
		return deviceError(oauth.ErrInvalidRequest, "iat is required")
	}
	if d := now.Sub(time.Unix(iat, 0)); d > deviceJWTWindow || d < -deviceJWTWindow {
		return deviceError(oauth.ErrInvalidRequest, "iat is more than %s from the server's clock; check the device's clock", deviceJWTWindow)
	}
	return nil
}

// verifyDeviceJWS checks a JWS signed by an enrolled, active device and returns the device and the
// payload. typ must match, so a signed decision cannot serve as a request signature or the reverse.
func (s *Service) verifyDeviceJWS(ctx context.Context, signed, typ string) (domain.Device, []byte, error) {
	unauthorized := func(format string, args ...any) (domain.Device, []byte, error) {
		return domain.Device{}, nil, deviceError(oauth.ErrInvalidToken, format, args...)
	}
	jws, err := jose.ParseSigned(signed, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return unauthorized("expected a compact JWS signed with ES256")
	}
	h := jws.Signatures[0].Protected
	if t, _ := h.ExtraHeaders[jose.HeaderType].(string); t != typ {
		return unauthorized("JWS typ must be %s", typ)
	}
	if h.KeyID == "" {
		return unauthorized("JWS kid must be the device_id")
	}
	dev, err := s.store.GetDevice(ctx, h.KeyID)
	if errors.Is(err, domain.ErrNotFound) {
		return unauthorized("unknown device")
	}
	if err != nil {
		return domain.Device{}, nil, err
	}
	if !dev.Active() {
		return unauthorized("this device was removed; enroll it again")
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(dev.PublicKey); err != nil {
		return domain.Device{}, nil, fmt.Errorf("stored key of device %s: %w", dev.ID, err)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return unauthorized("signature does not verify with the device's key")
	}
	return dev, payload, nil
}

// DeviceAuthClaims is the payload of the JWS a device sends in its Authorization header.
type DeviceAuthClaims struct {
	Audience string `json:"aud"`
	Method   string `json:"htm"`
	URL      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
}

// AuthenticateDevice checks the device's signed request header: signed by an active device, for this
// method and URL (without query), recently.
func (s *Service) AuthenticateDevice(ctx context.Context, signed, method, requestURL string) (domain.Device, error) {
	dev, payload, err := s.verifyDeviceJWS(ctx, signed, TypDeviceAuth)
	if err != nil {
		return domain.Device{}, err
	}
	var c DeviceAuthClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return domain.Device{}, deviceError(oauth.ErrInvalidToken, "device JWS payload: %s", jsonErrorText(err))
	}
	if err := s.checkDeviceClaims(c.Audience, c.IssuedAt, s.now()); err != nil {
		return domain.Device{}, deviceError(oauth.ErrInvalidToken, "%s", err.(*oauth.Error).Description)
	}
	if !strings.EqualFold(c.Method, method) || c.URL != requestURL {
		return domain.Device{}, deviceError(oauth.ErrInvalidToken, "device JWS htm/htu must be %s %s", method, requestURL)
	}
	return dev, nil
}

// RequestView is a request as the device API shows it: everything an authenticator must display,
// and the exact object (Shown) whose canonical hash a decision signs.
type RequestView struct {
	ID                   string           `json:"id"`
	Status               string           `json:"status"`
	Client               ClientView       `json:"client"`
	BindingMessage       string           `json:"binding_message,omitempty"`
	AuthorizationDetails json.RawMessage  `json:"authorization_details"`
	Rendered             []RenderedDetail `json:"rendered"`
	Scope                []string         `json:"scope"`
	Audience             []string         `json:"audience"`
	CreatedAt            time.Time        `json:"created_at"`
	ExpiresAt            time.Time        `json:"expires_at"`
	ExpiresIn            int              `json:"expires_in"`
	Shown                domain.Shown     `json:"shown"`
	ShownSHA256          string           `json:"shown_sha256"`
	Decision             *DecisionView    `json:"decision,omitempty"`
	// VerificationChoices, set when number matching is required, are three two-digit codes: the one
	// the agent shows the user and two decoys. Approve only once the user picked the right one.
	VerificationChoices []string `json:"verification_choices,omitempty"`
	// RequireUserVerification asks for a passkey assertion with an approval.
	RequireUserVerification bool `json:"require_user_verification,omitempty"`
	// PasskeyCredentialIDs lists the user's passkeys (base64url) for the assertion's allowCredentials.
	PasskeyCredentialIDs []string `json:"passkey_credential_ids,omitempty"`
}

// ClientView names the agent that asks.
type ClientView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// DecisionView is a decided request's receipt.
type DecisionView struct {
	Decision     string    `json:"decision"`
	DeviceID     string    `json:"device_id"`
	DecidedAt    time.Time `json:"decided_at"`
	Redeemed     bool      `json:"redeemed"`
	Reported     bool      `json:"reported,omitempty"`
	UserVerified bool      `json:"user_verified,omitempty"`
}

func (s *Service) view(r domain.Request, now time.Time) (RequestView, error) {
	shown := r.Shown()
	sum, err := shown.SHA256()
	if err != nil {
		return RequestView{}, err
	}
	status := string(r.Status)
	if r.Status == domain.StatusPending && r.IsExpired(now) {
		status = string(domain.StatusExpired)
	}
	v := RequestView{
		ID: r.ID, Status: status, Client: ClientView{ID: r.ClientID, Name: r.ClientName},
		BindingMessage: r.BindingMessage, AuthorizationDetails: shown.AuthorizationDetails,
		Rendered: s.opts.DetailTypes.Render(r.AuthorizationDetails), Scope: shown.Scope, Audience: shown.Audience,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, ExpiresIn: max(0, int(r.ExpiresAt.Sub(now)/time.Second)),
		Shown: shown, ShownSHA256: base64.RawURLEncoding.EncodeToString(sum),
	}
	if r.Receipt != nil {
		v.Decision = &DecisionView{Decision: string(r.Receipt.Decision), DeviceID: r.Receipt.DeviceID,
			DecidedAt: r.Receipt.DecidedAt, Redeemed: !r.RedeemedAt.IsZero(), Reported: r.Receipt.Reported,
			UserVerified: r.Receipt.UserVerified}
	}
	if r.VerificationCode != "" && status == string(domain.StatusPending) {
		v.VerificationChoices = verificationChoices(r.ID, r.VerificationCode)
	}
	v.RequireUserVerification = r.RequireUserVerification
	return v, nil
}

// verificationChoices are the right code and two decoys, in an order and with decoys that depend
// only on the request, so every device and every reload shows the same three.
func verificationChoices(id, code string) []string {
	seed := sha256.Sum256([]byte("countersign number matching " + id))
	choices := []string{code}
	for i := 0; len(choices) < 3 && i < len(seed); i++ {
		c := fmt.Sprintf("%02d", seed[i]%100)
		if !slices.Contains(choices, c) {
			choices = append(choices, c)
		}
	}
	pos := int(seed[31] % 3)
	choices[0], choices[pos] = choices[pos], choices[0]
	return choices
}

// PendingRequests lists the device's user's pending requests, oldest first (the order to decide them).
func (s *Service) PendingRequests(ctx context.Context, dev domain.Device) ([]RequestView, error) {
	now := s.now()
	list, err := s.store.ListRequests(ctx, domain.RequestFilter{Subject: dev.Subject, Status: domain.StatusPending, UnexpiredAt: now,
		// Creation caps a user's unexpired pending requests at MaxPendingPerUser, so this lists them all.
		Limit: max(s.opts.MaxPendingPerUser, 100)})
	if err != nil {
		return nil, err
	}
	out := make([]RequestView, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		v, err := s.view(list[i], now)
		if err != nil {
			return nil, err
		}
		if v, err = s.withPasskeys(ctx, v, dev.Subject); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// History lists the device's user's recent requests in every state, newest first: limit of them
// (default 50, at most 100).
func (s *Service) History(ctx context.Context, dev domain.Device, limit int) ([]RequestView, error) {
	if limit <= 0 {
		limit = 50
	}
	now := s.now()
	list, err := s.store.ListRequests(ctx, domain.RequestFilter{Subject: dev.Subject, Limit: min(max(limit, 1), 100)})
	if err != nil {
		return nil, err
	}
	out := make([]RequestView, 0, len(list))
	for _, r := range list {
		v, err := s.view(r, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// RequestForDevice returns one of the device's user's requests.
func (s *Service) RequestForDevice(ctx context.Context, dev domain.Device, id string) (RequestView, error) {
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && r.Subject != dev.Subject) {
		return RequestView{}, deviceError(ErrNotFound, "no such request for this user")
	}
	if err != nil {
		return RequestView{}, err
	}
	v, err := s.view(r, s.now())
	if err != nil {
		return v, err
	}
	return s.withPasskeys(ctx, v, dev.Subject)
}

// DecisionClaims is the payload of a signed decision.
type DecisionClaims struct {
	Audience    string `json:"aud"`
	RequestID   string `json:"request_id"`
	Decision    string `json:"decision"`
	ShownSHA256 string `json:"shown_sha256"`
	IssuedAt    int64  `json:"iat"`
	ID          string `json:"jti"`
	// VerificationCode is the number-matching code the user picked (approvals that require it).
	VerificationCode string `json:"verification_code,omitempty"`
	// Report marks a denial as "not mine" (deny and report).
	Report bool `json:"report,omitempty"`
}

// Decide verifies a device's signed decision about a request and records it, with its receipt,
// audit event and (for ping and push clients) callback, in one transaction. In push mode an approval
// also issues the tokens in that transaction, since they are delivered rather than polled.
func (s *Service) Decide(ctx context.Context, requestID, signed string, webauthnAssertion json.RawMessage) (RequestView, error) {
	dev, payload, err := s.verifyDeviceJWS(ctx, signed, TypDecision)
	if err != nil {
		return RequestView{}, err
	}
	var claims DecisionClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return RequestView{}, deviceError(oauth.ErrInvalidRequest, "decision payload: %s", jsonErrorText(err))
	}
	now := s.now()
	if err := s.checkDeviceClaims(claims.Audience, claims.IssuedAt, now); err != nil {
		return RequestView{}, err
	}
	if claims.RequestID != requestID {
		return RequestView{}, deviceError(oauth.ErrInvalidRequest, "the decision was signed for request %q, not %q", claims.RequestID, requestID)
	}
	decision := domain.Decision(claims.Decision)
	if decision != domain.DecisionApprove && decision != domain.DecisionDeny {
		return RequestView{}, deviceError(oauth.ErrInvalidRequest, "decision must be %q or %q", domain.DecisionApprove, domain.DecisionDeny)
	}
	signedHash, err := base64.RawURLEncoding.DecodeString(claims.ShownSHA256)
	if err != nil || len(signedHash) != 32 {
		return RequestView{}, deviceError(oauth.ErrInvalidRequest, "shown_sha256 must be a base64url SHA-256")
	}
	r, err := s.store.GetRequest(ctx, requestID)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && r.Subject != dev.Subject) {
		return RequestView{}, deviceError(ErrNotFound, "no such request for this user")
	}
	if err != nil {
		return RequestView{}, err
	}
	want, err := r.Shown().SHA256()
	if err != nil {
		return RequestView{}, err
	}
	if !equalHash(want, signedHash) {
		return RequestView{}, deviceError(ErrConflict, "the signed content does not match this request; reload it and decide again")
	}
	receipt := domain.Receipt{DeviceID: dev.ID, Decision: decision, ShownSHA256: want, Signature: signed, DecidedAt: now}
	if claims.Report {
		if decision != domain.DecisionDeny {
			return RequestView{}, deviceError(oauth.ErrInvalidRequest, "only a denial can be reported")
		}
		receipt.Reported = true
	}
	var passkey domain.Passkey
	var passkeyState []byte
	if decision == domain.DecisionApprove && r.Status == domain.StatusPending {
		if r.VerificationCode != "" && subtle.ConstantTimeCompare([]byte(claims.VerificationCode), []byte(r.VerificationCode)) != 1 {
			return RequestView{}, deviceError(oauth.ErrInvalidRequest, "that is not the code the agent shows; check the number on the agent's screen")
		}
		if r.RequireUserVerification {
			if passkey, passkeyState, err = s.verifyStepUp(ctx, dev.Subject, signed, webauthnAssertion); err != nil {
				return RequestView{}, err
			}
			receipt.UserVerified = true
		}
	}

	var client domain.Client
	var pushTokens *issued
	if r.DeliveryMode == domain.DeliveryPush && decision == domain.DecisionApprove && r.Status == domain.StatusPending {
		if client, err = s.store.GetClient(ctx, r.ClientID); err != nil {
			return RequestView{}, err
		}
		g := grantOf(r)
		g.Receipt, g.AuthTime = &receipt, now
		out, err := s.mint(ctx, client, g, now, r.CallbackAuthReqID)
		if err != nil {
			return RequestView{}, err
		}
		pushTokens = &out
	}

	notified, err := s.shouldNotifySubject(ctx, r.Subject, notify.NotifyClosed)
	if err != nil {
		return RequestView{}, err
	}
	var queued bool
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		var err error
		if passkeyState != nil {
			if _, err := tx.UpdatePasskey(ctx, passkey.ID, func(p *domain.Passkey) error {
				p.Credential, p.LastUsedAt = passkeyState, now
				return nil
			}); err != nil {
				return err
			}
		}
		r, err = tx.UpdateRequest(ctx, requestID, func(req *domain.Request) error {
			if decision == domain.DecisionDeny {
				return req.Deny(now, receipt)
			}
			if err := req.Approve(now, receipt); err != nil {
				return err
			}
			if pushTokens != nil {
				return req.Redeem(now, req.ClientID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// The push body: the denial, or (below) the tokens. Ping callbacks carry only auth_req_id.
		event := domain.AuditRequestApproved
		var body any
		if decision == domain.DecisionDeny {
			event = domain.AuditRequestDenied
			body = oauth.PushError{AuthReqID: r.CallbackAuthReqID, Error: oauth.ErrAccessDenied, Description: "the user denied the request"}
		}
		detail := map[string]any{"shown_sha256": claims.ShownSHA256}
		if pushTokens != nil {
			for _, t := range pushTokens.records {
				if err := tx.CreateToken(ctx, t); err != nil {
					return err
				}
			}
			resp := pushTokens.resp
			resp.AuthReqID = r.CallbackAuthReqID
			body = resp
			detail["jti"] = pushTokens.records[0].ID
		}
		if receipt.UserVerified {
			detail["user_verified"] = true
			detail["passkey_id"] = passkey.ID
		}
		if err := tx.AppendAudit(ctx, auditEvent(now, event, r, dev.ID, detail)); err != nil {
			return err
		}
		if receipt.Reported {
			if err := tx.AppendAudit(ctx, auditEvent(now, domain.AuditRequestReported, r, dev.ID, map[string]any{
				"held_until": now.Add(s.opts.ReportHold)})); err != nil {
				return err
			}
			if s.opts.Channels["operator_webhook"] {
				if _, err := tx.EnqueueOutbox(ctx, domain.OutboxMessage{Kind: OutboxReport, RequestID: r.ID, Target: "operator",
					Status: domain.OutboxPending, CreatedAt: now, NextAttemptAt: now}); err != nil {
					return err
				}
				queued = true
			}
		}
		if notified {
			if err := s.enqueueNotification(ctx, tx, r, notify.NotifyClosed); err != nil {
				return err
			}
		}
		callback, err := s.enqueueCallback(ctx, tx, r, body)
		queued = queued || callback || notified
		return err
	})
	switch {
	case errors.Is(err, domain.ErrNotPending):
		return RequestView{}, deviceError(ErrConflict, "the request is no longer pending")
	case errors.Is(err, domain.ErrRequestExpired):
		return RequestView{}, deviceError(ErrConflict, "the request has expired")
	case err != nil:
		return RequestView{}, err
	}
	s.changed(r, queued)
	return s.view(r, now)
}

// withPasskeys adds the user's passkey IDs to a view of a pending request that needs user
// verification, so the app can ask for the right passkey.
func (s *Service) withPasskeys(ctx context.Context, v RequestView, subject string) (RequestView, error) {
	if !v.RequireUserVerification || v.Status != string(domain.StatusPending) {
		return v, nil
	}
	ids, err := s.passkeyIDs(ctx, subject)
	v.PasskeyCredentialIDs = ids
	return v, err
}

// DeviceView is an enrolled device as the device API lists it.
type DeviceView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Current   bool       `json:"current"`
}

// Devices lists the user's devices, marking the one asking.
func (s *Service) Devices(ctx context.Context, dev domain.Device) ([]DeviceView, error) {
	list, err := s.store.ListDevices(ctx, dev.Subject)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceView, 0, len(list))
	for _, d := range list {
		v := DeviceView{ID: d.ID, Name: d.Name, Kind: d.Kind, CreatedAt: d.CreatedAt, Current: d.ID == dev.ID}
		if !d.Active() {
			t := d.RevokedAt
			v.RevokedAt = &t
		}
		out = append(out, v)
	}
	return out, nil
}

// RemoveDevice revokes one of the user's devices (possibly the asking one).
func (s *Service) RemoveDevice(ctx context.Context, dev domain.Device, id string) error {
	target, err := s.store.GetDevice(ctx, id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && target.Subject != dev.Subject) {
		return deviceError(ErrNotFound, "no such device for this user")
	}
	if err != nil {
		return err
	}
	if !target.Active() {
		return nil // already removed: nothing changes, nothing to audit
	}
	now := s.now()
	return s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.RevokeDevice(ctx, id, now); err != nil {
			return err
		}
		if err := tx.DeletePushSubscription(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditDeviceRevoked, Subject: dev.Subject, DeviceID: id,
			Detail: mustJSON(map[string]any{"by_device": dev.ID})})
	})
}
