package authz

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// Refresh exchanges a refresh token (RFC 6749 section 6). Refresh tokens rotate: each use returns a
// new one, and presenting a used one again revokes the whole family, since it means a copy leaked.
// The new access token carries the same approved authorization_details and receipt.
func (s *Service) Refresh(ctx context.Context, c domain.Client, refreshToken, scope string) (oauth.TokenResponse, error) {
	if !c.AllowsGrant(oauth.GrantTypeRefreshToken) || !c.RefreshTokens {
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrUnauthorizedClient, "client may not use refresh tokens")
	}
	if refreshToken == "" {
		return oauth.TokenResponse{}, oauth.NewError(oauth.ErrInvalidRequest, "refresh_token is required")
	}
	t, err := s.store.GetTokenByHash(ctx, hashSecret(refreshToken))
	if errors.Is(err, domain.ErrNotFound) || (err == nil && (t.Kind != domain.TokenRefresh || t.ClientID != c.ID)) {
		return oauth.TokenResponse{}, invalidGrant("refresh_token is unknown")
	}
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	now := s.now()
	if !t.UsedAt.IsZero() {
		return oauth.TokenResponse{}, s.refreshReused(ctx, t, now)
	}
	if !t.Active(now) {
		return oauth.TokenResponse{}, invalidGrant("refresh_token has expired or was revoked")
	}
	granted := t.Scope
	if requested := strings.Fields(scope); len(requested) > 0 {
		for _, sc := range requested {
			if !slices.Contains(t.Scope, sc) {
				return oauth.TokenResponse{}, oauth.Errorf(oauth.ErrInvalidScope, "scope %q was not granted", sc)
			}
		}
		granted = requested
	}
	r, err := s.store.GetRequest(ctx, t.RequestID)
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	g := grantOf(r)
	g.Scope, g.FamilyID = granted, t.FamilyID
	if !slices.Contains(granted, oauth.ScopeOfflineAccess) {
		// Narrowing the scope must not end the family: keep the refresh token coming.
		g.Scope = append(slices.Clone(granted), oauth.ScopeOfflineAccess)
	}
	out, err := s.mint(ctx, c, g, now, "")
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	out.resp.Scope = strings.Join(granted, " ")
	err = s.store.InTx(ctx, func(tx domain.Store) error {
		if _, err := tx.UpdateToken(ctx, t.ID, func(tok *domain.Token) error {
			if !tok.UsedAt.IsZero() || !tok.RevokedAt.IsZero() {
				return errRefreshRaced
			}
			tok.UsedAt = now
			return nil
		}); err != nil {
			return err
		}
		for _, rec := range out.records {
			if err := tx.CreateToken(ctx, rec); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditTokenRefreshed, Subject: t.Subject, ClientID: c.ID, RequestID: t.RequestID})
	})
	if errors.Is(err, errRefreshRaced) {
		// Another exchange of the same token won: two holders of one refresh token is a leak too.
		return oauth.TokenResponse{}, s.refreshReused(ctx, t, now)
	}
	if err != nil {
		return oauth.TokenResponse{}, err
	}
	return out.resp, nil
}

// errRefreshRaced marks a refresh token used by another exchange between our read and our write.
var errRefreshRaced = errors.New("refresh token used concurrently")

// refreshReused revokes a refresh token's whole family (a used token presented again means a copy
// leaked, RFC 9700 section 4.14.2) and answers invalid_grant.
func (s *Service) refreshReused(ctx context.Context, t domain.Token, now time.Time) error {
	err := s.store.InTx(ctx, func(tx domain.Store) error {
		if err := tx.RevokeTokenFamily(ctx, t.FamilyID, now); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditRefreshReuse, Subject: t.Subject, ClientID: t.ClientID, RequestID: t.RequestID})
	})
	if err != nil {
		return err
	}
	return invalidGrant("refresh_token was already used; its family is now revoked")
}

// accessTokenRecord verifies an access token we issued and returns its claims and stored record.
func (s *Service) accessTokenRecord(ctx context.Context, raw string) (oauth.AccessTokenClaims, domain.Token, error) {
	var claims oauth.AccessTokenClaims
	payload, err := s.signer.Verify(ctx, raw, typAccessToken)
	if err != nil {
		return claims, domain.Token{}, err
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return claims, domain.Token{}, err
	}
	if claims.Issuer != s.opts.Issuer {
		return claims, domain.Token{}, errors.New("foreign issuer")
	}
	rec, err := s.store.GetToken(ctx, claims.JWTID)
	if err != nil {
		return claims, domain.Token{}, err
	}
	return claims, rec, nil
}

// Introspect answers RFC 7662. Any authenticated client may introspect an access token (resource
// servers are clients too, and the JWT is readable by its holder anyway); a refresh token is active
// only to the client it was issued to.
func (s *Service) Introspect(ctx context.Context, c domain.Client, raw, hint string) oauth.IntrospectionResponse {
	now := s.now()
	if raw == "" {
		return oauth.IntrospectionResponse{}
	}
	if hint != string(domain.TokenRefresh) && strings.Count(raw, ".") == 2 {
		claims, rec, err := s.accessTokenRecord(ctx, raw)
		if err == nil && rec.Active(now) {
			return oauth.IntrospectionResponse{
				Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Subject: claims.Subject,
				Audience: claims.Audience, Issuer: claims.Issuer, ExpiresAt: claims.ExpiresAt, IssuedAt: claims.IssuedAt,
				JWTID: claims.JWTID, TokenType: oauth.TokenTypeBearer, AuthorizationDetails: claims.AuthorizationDetails,
				Approval: claims.Approval,
			}
		}
		return oauth.IntrospectionResponse{}
	}
	t, err := s.store.GetTokenByHash(ctx, hashSecret(raw))
	if err != nil || t.Kind != domain.TokenRefresh || t.ClientID != c.ID || !t.Active(now) || !t.UsedAt.IsZero() {
		return oauth.IntrospectionResponse{}
	}
	return oauth.IntrospectionResponse{
		Active: true, Scope: strings.Join(t.Scope, " "), ClientID: t.ClientID, Subject: t.Subject, Audience: t.Audience,
		Issuer: s.opts.Issuer, ExpiresAt: t.ExpiresAt.Unix(), IssuedAt: t.IssuedAt.Unix(), TokenType: "refresh_token",
		AuthorizationDetails: t.AuthorizationDetails,
	}
}

// Revoke answers RFC 7009 for access and refresh tokens, and cancels a pending request when given
// the client's own auth_req_id. Whatever is not the client's own is ignored silently, as the RFC
// asks, so revocation cannot be used to probe for tokens.
func (s *Service) Revoke(ctx context.Context, c domain.Client, raw, hint string) error {
	if raw == "" {
		return oauth.NewError(oauth.ErrInvalidRequest, "token is required")
	}
	now := s.now()
	if strings.Count(raw, ".") == 2 {
		_, rec, err := s.accessTokenRecord(ctx, raw)
		if err != nil || rec.ClientID != c.ID || !rec.RevokedAt.IsZero() {
			return nil
		}
		return s.revokeRecord(ctx, rec, now)
	}
	if hint != "auth_req_id" {
		t, err := s.store.GetTokenByHash(ctx, hashSecret(raw))
		if err == nil {
			if t.ClientID != c.ID {
				return nil
			}
			// Revoking a refresh token revokes its family, and with it the grant (RFC 7009 section 2.1).
			if err := s.store.RevokeTokenFamily(ctx, t.FamilyID, now); err != nil {
				return err
			}
			return s.store.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditTokenRevoked, Subject: t.Subject, ClientID: c.ID, RequestID: t.RequestID})
		}
		if !errors.Is(err, domain.ErrNotFound) {
			return err
		}
	}
	_, err := s.CancelRequest(ctx, c, raw)
	return err
}

func (s *Service) revokeRecord(ctx context.Context, rec domain.Token, now time.Time) error {
	return s.store.InTx(ctx, func(tx domain.Store) error {
		if _, err := tx.UpdateToken(ctx, rec.ID, func(t *domain.Token) error {
			if t.RevokedAt.IsZero() {
				t.RevokedAt = now
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditTokenRevoked, Subject: rec.Subject, ClientID: rec.ClientID, RequestID: rec.RequestID,
			Detail: mustJSON(map[string]any{"jti": rec.ID})})
	})
}

// UserInfo answers the userinfo endpoint for a bearer access token (OpenID Connect Core 5.3).
func (s *Service) UserInfo(ctx context.Context, raw string) (map[string]any, error) {
	claims, rec, err := s.accessTokenRecord(ctx, raw)
	if err != nil || !rec.Active(s.now()) {
		return nil, oauth.NewError(oauth.ErrInvalidToken, "the access token is invalid, expired or revoked")
	}
	scope := strings.Fields(claims.Scope)
	if !slices.Contains(scope, oauth.ScopeOpenID) {
		return nil, oauth.NewError(oauth.ErrInsufficientScope, "the access token lacks the openid scope")
	}
	u, err := s.store.GetUser(ctx, claims.Subject)
	if err != nil {
		return nil, oauth.NewError(oauth.ErrInvalidToken, "the token's user no longer exists")
	}
	out := map[string]any{"sub": u.Subject}
	addProfileClaims(out, u, scope)
	return out, nil
}
