package domain

import (
	"encoding/json"
	"slices"
	"time"
)

// DeliveryMode is how a client learns the outcome of a backchannel request (CIBA section 5).
type DeliveryMode string

// The three CIBA token delivery modes.
const (
	DeliveryPoll DeliveryMode = "poll"
	DeliveryPing DeliveryMode = "ping"
	DeliveryPush DeliveryMode = "push"
)

// Client authentication methods at the token, backchannel, introspection and revocation endpoints.
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// Client is a registered relying party: an agent backend that asks for approval, or a resource server
// that introspects tokens.
type Client struct {
	ID   string
	Name string
	// GrantTypes lists the grants the client may use (the CIBA grant, refresh_token).
	GrantTypes []string
	// SecretHash is the SHA-256 of the client secret; empty for clients that only use private_key_jwt.
	SecretHash []byte
	// AuthMethod restricts client authentication to one method; empty accepts either secret method
	// when the client has a secret, and private_key_jwt when it has keys.
	AuthMethod string
	// JWKS is an inline JSON Web Key Set; JWKSURI points to one. Either verifies private_key_jwt
	// assertions, signed request objects and login_hint_token.
	JWKS    json.RawMessage
	JWKSURI string

	DeliveryMode         DeliveryMode
	NotificationEndpoint string
	// RequestSigningAlg is backchannel_authentication_request_signing_alg: when set, the client must
	// send its backchannel parameters as a request object signed with this algorithm.
	RequestSigningAlg string
	// UserCodeParameter is backchannel_user_code_parameter: the client may send user_code, and users
	// who have a user code must supply it.
	UserCodeParameter bool

	// AuthorizationDetailsTypes lists the RAR types this client may request.
	AuthorizationDetailsTypes []string
	// Scopes lists the scopes this client may request.
	Scopes []string
	// Audiences, when not empty, lists the only audiences (resource indicators) the client may request.
	Audiences []string
	// IDTokenSigningAlg is id_token_signed_response_alg; empty means RS256.
	IDTokenSigningAlg string
	// RefreshTokens lets the client receive refresh tokens (with the offline_access scope).
	RefreshTokens bool
	// AccessTokenTTL overrides the server's access token lifetime for this client when positive.
	AccessTokenTTL time.Duration
	// ExpiredAsAccessDenied answers an expired request with access_denied instead of expired_token,
	// as Auth0 does. Off by default: the CIBA specification says expired_token.
	ExpiredAsAccessDenied bool

	CreatedAt time.Time
	UpdatedAt time.Time
}

// AllowsGrant reports whether the client may use the grant type.
func (c Client) AllowsGrant(gt string) bool { return slices.Contains(c.GrantTypes, gt) }

// AllowsType reports whether the client may request authorization_details of the given type.
func (c Client) AllowsType(t string) bool { return slices.Contains(c.AuthorizationDetailsTypes, t) }

// AllowsScope reports whether the client may request the scope.
func (c Client) AllowsScope(s string) bool { return slices.Contains(c.Scopes, s) }

// AllowsAudience reports whether the client may request a token for the audience.
func (c Client) AllowsAudience(aud string) bool {
	return len(c.Audiences) == 0 || slices.Contains(c.Audiences, aud)
}

// HasKeys reports whether the client registered keys for signed assertions.
func (c Client) HasKeys() bool { return len(c.JWKS) > 0 || c.JWKSURI != "" }
