package authz

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/token"
	"github.com/countersign/countersign/oauth"
)

// Token types in the JWT typ header: RFC 9068 for access tokens, plain JWT for ID tokens. Distinct
// types stop an access token from passing as an id_token_hint and the reverse.
const (
	typAccessToken = "at+jwt"
	typIDToken     = "JWT"
)

// issued is a token response and the records to store with it.
type issued struct {
	resp    oauth.TokenResponse
	records []domain.Token
}

// grant is what a set of tokens is issued for: an approved request, or a refresh token's grant.
type grant struct {
	Subject              string
	Scope                []string
	Audience             []string
	AuthorizationDetails []byte
	RequestID            string
	Receipt              *domain.Receipt
	AuthTime             time.Time
	// FamilyID continues a refresh-token family; empty starts a new one.
	FamilyID string
}

func grantOf(r domain.Request) grant {
	return grant{
		Subject: r.Subject, Scope: r.Scope, Audience: r.Audience, AuthorizationDetails: r.AuthorizationDetails,
		RequestID: r.ID, Receipt: r.Receipt, AuthTime: r.DecidedAt,
	}
}

// mint signs the tokens for a grant. It does not store anything: the caller commits the records in
// the same transaction as the state change that justifies them, and only then hands out the tokens.
// pushAuthReqID is set in CIBA push mode, where the ID token names the request it answers.
func (s *Service) mint(ctx context.Context, c domain.Client, g grant, now time.Time, pushAuthReqID string) (issued, error) {
	ttl := s.opts.AccessTokenTTL
	if c.AccessTokenTTL > 0 {
		ttl = c.AccessTokenTTL
	}
	audience := g.Audience
	if len(audience) == 0 {
		audience = []string{s.opts.Issuer}
	}
	jti := randomID(16)
	at := oauth.AccessTokenClaims{
		Issuer: s.opts.Issuer, Subject: g.Subject, Audience: audience,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), JWTID: jti,
		ClientID: c.ID, Scope: strings.Join(g.Scope, " "), AuthorizationDetails: g.AuthorizationDetails,
	}
	if g.Receipt != nil {
		at.Approval = &oauth.Approval{
			RequestID:   g.RequestID,
			DeviceID:    g.Receipt.DeviceID,
			ShownSHA256: base64.RawURLEncoding.EncodeToString(g.Receipt.ShownSHA256),
			ApprovedAt:  g.Receipt.DecidedAt.Unix(),
		}
	}
	accessToken, err := s.signer.Sign(ctx, "ES256", typAccessToken, at)
	if err != nil {
		return issued{}, err
	}
	out := issued{
		resp: oauth.TokenResponse{
			AccessToken: accessToken, TokenType: oauth.TokenTypeBearer, ExpiresIn: int(ttl / time.Second),
			Scope: strings.Join(g.Scope, " "), AuthorizationDetails: g.AuthorizationDetails,
		},
		records: []domain.Token{{
			ID: jti, Kind: domain.TokenAccess, ClientID: c.ID, Subject: g.Subject, Scope: g.Scope,
			Audience: audience, AuthorizationDetails: g.AuthorizationDetails, RequestID: g.RequestID,
			IssuedAt: now, ExpiresAt: now.Add(ttl),
		}},
	}

	if c.RefreshTokens && c.AllowsGrant(oauth.GrantTypeRefreshToken) && slices.Contains(g.Scope, oauth.ScopeOfflineAccess) {
		rt := randomID(32)
		family := g.FamilyID
		if family == "" {
			family = randomID(16)
		}
		out.resp.RefreshToken = rt
		out.records = append(out.records, domain.Token{
			ID: randomID(16), Kind: domain.TokenRefresh, Hash: hashSecret(rt), ClientID: c.ID, Subject: g.Subject,
			Scope: g.Scope, Audience: g.Audience, AuthorizationDetails: g.AuthorizationDetails, RequestID: g.RequestID,
			FamilyID: family, IssuedAt: now, ExpiresAt: now.Add(s.opts.RefreshTokenTTL),
		})
	}

	if slices.Contains(g.Scope, oauth.ScopeOpenID) {
		idToken, err := s.idToken(ctx, c, g, now, accessToken, out.resp.RefreshToken, pushAuthReqID)
		if err != nil {
			return issued{}, err
		}
		out.resp.IDToken = idToken
	}
	return out, nil
}

func (s *Service) idToken(ctx context.Context, c domain.Client, g grant, now time.Time, accessToken, refreshToken, pushAuthReqID string) (string, error) {
	alg := c.IDTokenSigningAlg
	if alg == "" {
		alg = "RS256"
	}
	claims := map[string]any{
		"iss": s.opts.Issuer, "sub": g.Subject, "aud": c.ID,
		"iat": now.Unix(), "exp": now.Add(s.opts.IDTokenTTL).Unix(),
	}
	if !g.AuthTime.IsZero() {
		claims["auth_time"] = g.AuthTime.Unix()
	}
	atHash, err := token.HashForIDToken(alg, accessToken)
	if err != nil {
		return "", err
	}
	claims["at_hash"] = atHash
	if pushAuthReqID != "" {
		claims[oauth.ClaimAuthReqID] = pushAuthReqID
		if refreshToken != "" {
			rtHash, err := token.HashForIDToken(alg, refreshToken)
			if err != nil {
				return "", err
			}
			claims[oauth.ClaimRefreshTokenHash] = rtHash
		}
	}
	if slices.Contains(g.Scope, "profile") || slices.Contains(g.Scope, "email") {
		if u, err := s.store.GetUser(ctx, g.Subject); err == nil {
			addProfileClaims(claims, u, g.Scope)
		}
	}
	return s.signer.Sign(ctx, alg, typIDToken, claims)
}

// addProfileClaims adds the standard claims the scopes ask for (OpenID Connect Core section 5.4).
func addProfileClaims(claims map[string]any, u domain.User, scope []string) {
	if slices.Contains(scope, "profile") && u.Name != "" {
		claims["name"] = u.Name
	}
	if slices.Contains(scope, "email") && u.Email != "" {
		claims["email"] = u.Email
	}
}
