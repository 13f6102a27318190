package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// typWebAuthnSession marks the signed registration session we hand out as the WebAuthn challenge.
const typWebAuthnSession = "countersign-webauthn-session+jwt"

// passkeyCeremonyTTL is how long a passkey registration may take.
const passkeyCeremonyTTL = 5 * time.Minute

// relyingParty is the WebAuthn relying party: the issuer's host and origin.
func (s *Service) relyingParty() (*webauthn.WebAuthn, error) {
	u, err := url.Parse(s.opts.Issuer)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(u.Hostname()) != nil {
		// WebAuthn relying parties are domains: browsers refuse IP addresses.
		return nil, deviceError(oauth.ErrInvalidRequest, "passkeys need the issuer to be a domain name (such as localhost), not the IP address %s", u.Hostname())
	}
	return webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: "Countersign",
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
	})
}

// passkeyUser adapts a user and their passkeys to go-webauthn.
type passkeyUser struct {
	user  domain.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte          { return []byte(p.user.Subject) }
func (p passkeyUser) WebAuthnName() string        { return cmpOr(p.user.Email, p.user.Subject) }
func (p passkeyUser) WebAuthnDisplayName() string { return cmpOr(p.user.Name, p.user.Subject) }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	return p.creds
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Service) loadPasskeyUser(ctx context.Context, subject string) (passkeyUser, []domain.Passkey, error) {
	u, err := s.store.GetUser(ctx, subject)
	if err != nil {
		return passkeyUser{}, nil, err
	}
	keys, err := s.store.ListPasskeys(ctx, subject)
	if err != nil {
		return passkeyUser{}, nil, err
	}
	pu := passkeyUser{user: u}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return passkeyUser{}, nil, fmt.Errorf("stored passkey %s: %w", k.ID, err)
		}
		pu.creds = append(pu.creds, c)
	}
	return pu, keys, nil
}

// passkeySession is what the registration challenge carries, signed by the server: the ceremony's
// state travels with the browser instead of living in a replica's memory.
type passkeySession struct {
	Subject  string               `json:"sub"`
	DeviceID string               `json:"device_id"`
	Expires  int64                `json:"exp"`
	ID       string               `json:"jti"`
	Session  webauthn.SessionData `json:"session"`
}

// PasskeyOptions starts a passkey registration for the device's user. The challenge is a signed,
// short-lived description of the ceremony, checked and used once by RegisterPasskey.
func (s *Service) PasskeyOptions(ctx context.Context, dev domain.Device) (*protocol.CredentialCreation, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	pu, _, err := s.loadPasskeyUser(ctx, dev.Subject)
	if err != nil {
		return nil, err
	}
	creation, session, err := rp.BeginRegistration(pu,
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationRequired, ResidentKey: protocol.ResidentKeyRequirementPreferred,
		}))
	if err != nil {
		return nil, err
	}
	now := s.now()
	session.Challenge = ""
	signed, err := s.signer.Sign(ctx, "ES256", typWebAuthnSession, passkeySession{
		Subject: dev.Subject, DeviceID: dev.ID, Expires: now.Add(passkeyCeremonyTTL).Unix(), ID: randomID(16), Session: *session,
	})
	if err != nil {
		return nil, err
	}
	creation.Response.Challenge = protocol.URLEncodedBase64(signed)
	creation.Response.Timeout = int(passkeyCeremonyTTL / time.Millisecond)
	return creation, nil
}

// PasskeyView is a registered passkey as the device API lists it.
type PasskeyView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used_at,omitzero"`
}

// RegisterPasskey finishes a registration started by PasskeyOptions with the browser's credential.
func (s *Service) RegisterPasskey(ctx context.Context, dev domain.Device, body []byte, name string) (PasskeyView, error) {
	bad := func(format string, args ...any) (PasskeyView, error) {
		return PasskeyView{}, deviceError(oauth.ErrInvalidRequest, format, args...)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(body))
	if err != nil {
		return bad("the credential does not parse: %v", errText(err))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return bad("the challenge is not ours")
	}
	payload, err := s.signer.Verify(ctx, string(raw), typWebAuthnSession)
	if err != nil {
		return bad("the challenge is not ours")
	}
	var ps passkeySession
	if err := json.Unmarshal(payload, &ps); err != nil {
		return bad("the challenge is not ours")
	}
	now := s.now()
	switch {
	case ps.DeviceID != dev.ID || ps.Subject != dev.Subject:
		return bad("the challenge was issued to another device")
	case now.Unix() > ps.Expires:
		return bad("the registration took too long; start again")
	}
	if err := s.store.UseNonce(ctx, "passkey_session:"+ps.ID, time.Unix(ps.Expires, 0)); err != nil {
		if errors.Is(err, domain.ErrAlreadyExists) {
			return bad("this challenge was already used")
		}
		return PasskeyView{}, err
	}
	rp, err := s.relyingParty()
	if err != nil {
		return PasskeyView{}, err
	}
	pu, _, err := s.loadPasskeyUser(ctx, dev.Subject)
	if err != nil {
		return PasskeyView{}, err
	}
	session := ps.Session
	session.Challenge = parsed.Response.CollectedClientData.Challenge
	cred, err := rp.CreateCredential(pu, session, parsed)
	if err != nil {
		return bad("the passkey does not verify: %v", errText(err))
	}
	credJSON, err := json.Marshal(cred)
	if err != nil {
		return PasskeyView{}, err
	}
	name = cleanDisplay(name)
	if name == "" {
		name = "passkey"
	}
	p := domain.Passkey{ID: base64.RawURLEncoding.EncodeToString(cred.ID), Subject: dev.Subject, DeviceID: dev.ID,
		Name: truncateRunes(name, 64), Credential: credJSON, CreatedAt: now}
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.CreatePasskey(ctx, p); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditPasskeyAdded, Subject: dev.Subject, DeviceID: dev.ID,
			Detail: mustJSON(map[string]string{"passkey_id": p.ID, "name": p.Name})})
	})
	if errors.Is(err, domain.ErrAlreadyExists) {
		return bad("this passkey is already registered")
	}
	if err != nil {
		return PasskeyView{}, err
	}
	return PasskeyView{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}, nil
}

// errText gives go-webauthn's error with its details, which say what to fix.
func errText(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return pe.Details + ": " + pe.DevInfo
	}
	return err.Error()
}

// Passkeys lists the device's user's passkeys.
func (s *Service) Passkeys(ctx context.Context, dev domain.Device) ([]PasskeyView, error) {
	keys, err := s.store.ListPasskeys(ctx, dev.Subject)
	if err != nil {
		return nil, err
	}
	out := make([]PasskeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, PasskeyView{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, LastUsed: k.LastUsedAt})
	}
	return out, nil
}

// verifyStepUp checks a passkey assertion made over the signed decision: its challenge is the
// SHA-256 of the decision JWS, so it proves user verification for this decision and no other. It
// returns the passkey to update (its sign count) and the credential state to save.
func (s *Service) verifyStepUp(ctx context.Context, subject, signedDecision string, assertion json.RawMessage) (domain.Passkey, []byte, error) {
	denied := func(format string, args ...any) (domain.Passkey, []byte, error) {
		return domain.Passkey{}, nil, deviceError(oauth.ErrAccessDenied, format, args...)
	}
	if len(assertion) == 0 || string(assertion) == "null" {
		return denied("this request requires user verification: approve with your passkey")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(assertion))
	if err != nil {
		return denied("the passkey assertion does not parse: %v", errText(err))
	}
	pu, keys, err := s.loadPasskeyUser(ctx, subject)
	if err != nil {
		return domain.Passkey{}, nil, err
	}
	if len(keys) == 0 {
		return denied("this request requires user verification, and you have no passkey yet: add one in the app")
	}
	rp, err := s.relyingParty()
	if err != nil {
		return domain.Passkey{}, nil, err
	}
	sum := sha256.Sum256([]byte(signedDecision))
	session := webauthn.SessionData{
		Challenge:        base64.RawURLEncoding.EncodeToString(sum[:]),
		UserID:           pu.WebAuthnID(),
		UserVerification: protocol.VerificationRequired,
		Expires:          s.now().Add(passkeyCeremonyTTL),
	}
	for _, c := range pu.creds {
		session.AllowedCredentialIDs = append(session.AllowedCredentialIDs, c.ID)
	}
	cred, err := rp.ValidateLogin(pu, session, parsed)
	if err != nil {
		return denied("the passkey assertion does not verify: %v", errText(err))
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	for _, k := range keys {
		if k.ID == id {
			state, err := json.Marshal(cred)
			return k, state, err
		}
	}
	return denied("unknown passkey")
}

// passkeyIDs lists the user's passkey credential IDs, for the allowCredentials of an assertion.
func (s *Service) passkeyIDs(ctx context.Context, subject string) ([]string, error) {
	keys, err := s.store.ListPasskeys(ctx, subject)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids, nil
}
