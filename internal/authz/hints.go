package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// Hint is how a backchannel request names the user: exactly one of the three CIBA hints.
type Hint struct {
	LoginHint      string
	LoginHintToken string
	IDTokenHint    string
}

// LoginHint is a parsed login_hint: a subject, an email, or Auth0's iss_sub JSON.
type LoginHint struct {
	// Subject is set for a plain subject and for iss_sub.
	Subject string
	// Email is set when the hint looks like an email address. A plain value with "@" may still be a
	// subject; the resolver tries both.
	Email string
	// Issuer is the iss of an iss_sub hint.
	Issuer string
}

// ParseLoginHint reads the three login_hint forms. It returns an invalid_request error for a JSON
// hint that is not a well-formed iss_sub.
func ParseLoginHint(raw string) (LoginHint, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return LoginHint{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint is empty")
	}
	if len(raw) > 1024 {
		return LoginHint{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint is longer than 1024 bytes")
	}
	if strings.HasPrefix(raw, "{") {
		var h struct {
			Format string `json:"format"`
			Iss    string `json:"iss"`
			Sub    string `json:"sub"`
		}
		if err := json.Unmarshal([]byte(raw), &h); err != nil {
			return LoginHint{}, oauth.Errorf(oauth.ErrInvalidRequest, "login_hint is not valid JSON: %s", jsonErrorText(err))
		}
		if h.Format != "iss_sub" {
			return LoginHint{}, oauth.Errorf(oauth.ErrInvalidRequest, "login_hint format %q is not supported (use iss_sub, a subject or an email)", h.Format)
		}
		if h.Sub == "" || h.Iss == "" {
			return LoginHint{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint iss_sub needs both iss and sub")
		}
		return LoginHint{Subject: h.Sub, Issuer: h.Iss}, nil
	}
	if strings.Contains(raw, "@") {
		return LoginHint{Subject: raw, Email: raw}, nil
	}
	return LoginHint{Subject: raw}, nil
}

// sameIssuer compares an issuer as a client wrote it with ours leniently, as Auth0 clients need:
// scheme and a trailing slash do not matter, the host is case-insensitive.
func sameIssuer(theirs, ours string) bool {
	norm := func(s string) string {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" {
			// Auth0 clients sometimes send the bare domain.
			return strings.ToLower(strings.TrimSuffix(s, "/"))
		}
		return strings.ToLower(u.Host) + strings.TrimSuffix(u.EscapedPath(), "/")
	}
	return norm(theirs) == norm(ours)
}

func unknownUser() *oauth.Error {
	return oauth.NewError(oauth.ErrUnknownUserID, "the hint does not identify a known user")
}

// resolveUser finds the user a backchannel request names.
func (s *Service) resolveUser(ctx context.Context, c domain.Client, h Hint) (domain.User, error) {
	n := 0
	for _, v := range []string{h.LoginHint, h.LoginHintToken, h.IDTokenHint} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "send exactly one of login_hint, login_hint_token and id_token_hint")
	}
	switch {
	case h.LoginHint != "":
		lh, err := ParseLoginHint(h.LoginHint)
		if err != nil {
			return domain.User{}, err
		}
		if lh.Issuer != "" && !sameIssuer(lh.Issuer, s.opts.Issuer) {
			return domain.User{}, oauth.Errorf(oauth.ErrUnknownUserID, "login_hint iss %q is not this server", lh.Issuer)
		}
		return s.findUser(ctx, lh.Subject, lh.Email)
	case h.IDTokenHint != "":
		return s.userFromIDTokenHint(ctx, c, h.IDTokenHint)
	default:
		return s.userFromLoginHintToken(ctx, c, h.LoginHintToken)
	}
}

func (s *Service) findUser(ctx context.Context, subject, email string) (domain.User, error) {
	if subject != "" {
		u, err := s.store.GetUser(ctx, subject)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, domain.ErrNotFound) {
			return domain.User{}, err
		}
	}
	if email != "" {
		u, err := s.store.GetUserByEmail(ctx, email)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, domain.ErrNotFound) {
			return domain.User{}, err
		}
	}
	return domain.User{}, unknownUser()
}

// userFromIDTokenHint accepts an ID token this server issued to the same client. It may have
// expired: it only names the user, who still has to approve.
func (s *Service) userFromIDTokenHint(ctx context.Context, c domain.Client, raw string) (domain.User, error) {
	payload, err := s.signer.Verify(ctx, raw, "JWT", "")
	if err != nil {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "id_token_hint is not an ID token issued by this server").WithCause(err)
	}
	var claims struct {
		Issuer   string          `json:"iss"`
		Subject  string          `json:"sub"`
		Audience oauth.Audience  `json:"aud"`
		Typ      json.RawMessage `json:"typ"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Subject == "" {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "id_token_hint has no sub")
	}
	if claims.Issuer != s.opts.Issuer {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "id_token_hint was not issued by this server")
	}
	if !claims.Audience.Contains(c.ID) {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "id_token_hint was issued to another client")
	}
	return s.findUser(ctx, claims.Subject, "")
}

// loginHintTokenClaims is the login_hint_token we accept: a JWT signed with a key the client
// registered, naming the user by sub or email (or a RFC 9493 sub_id of format email, iss_sub or
// opaque), with exp.
type loginHintTokenClaims struct {
	jwt.Claims
	Email string `json:"email"`
	SubID *struct {
		Format string `json:"format"`
		Email  string `json:"email"`
		Iss    string `json:"iss"`
		Sub    string `json:"sub"`
		ID     string `json:"id"`
	} `json:"sub_id"`
}

func (s *Service) userFromLoginHintToken(ctx context.Context, c domain.Client, raw string) (domain.User, error) {
	if !c.HasKeys() {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token needs keys registered for the client (jwks or jwks_uri)")
	}
	tok, err := jwt.ParseSigned(raw, ClientAlgorithms)
	if err != nil {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token is not a signed JWT").WithCause(err)
	}
	var claims loginHintTokenClaims
	if err := s.verifyClientJWT(ctx, c, tok, &claims); err != nil {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token signature does not verify with the client's keys").WithCause(err)
	}
	now := s.clock.Now()
	if claims.Expiry == nil {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token must have exp")
	}
	if !now.Before(claims.Expiry.Time().Add(clockSkew)) {
		return domain.User{}, oauth.NewError(oauth.ErrExpiredLoginHintToken, "login_hint_token has expired")
	}
	if claims.Issuer != "" && claims.Issuer != c.ID {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token iss must be the client_id")
	}
	if len(claims.Audience) > 0 && !s.audienceIsUs(claims.Audience, "") {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token aud must be this issuer")
	}
	subject, email := claims.Subject, claims.Email
	if sid := claims.SubID; sid != nil {
		switch sid.Format {
		case "email":
			email = sid.Email
		case "iss_sub":
			if !sameIssuer(sid.Iss, s.opts.Issuer) {
				return domain.User{}, oauth.NewError(oauth.ErrUnknownUserID, "login_hint_token sub_id iss is not this server")
			}
			subject = sid.Sub
		case "opaque":
			subject = sid.ID
		default:
			return domain.User{}, oauth.Errorf(oauth.ErrInvalidRequest, "login_hint_token sub_id format %q is not supported", sid.Format)
		}
	}
	if subject == "" && email == "" {
		return domain.User{}, oauth.NewError(oauth.ErrInvalidRequest, "login_hint_token names no user (sub, email or sub_id)")
	}
	return s.findUser(ctx, subject, email)
}
