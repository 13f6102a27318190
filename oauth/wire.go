package oauth

import "encoding/json"

// Grant types, parameter values and token types.
const (
	GrantTypeCIBA            = "urn:openid:params:grant-type:ciba"
	GrantTypeRefreshToken    = "refresh_token"
	ClientAssertionJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	TokenTypeBearer          = "Bearer"
	ScopeOpenID              = "openid"
	ScopeOfflineAccess       = "offline_access"
	// ClaimAuthReqID is the ID token claim that names the request in CIBA push mode (section 10.3.1).
	ClaimAuthReqID = "urn:openid:params:jwt:claim:auth_req_id"
	// ClaimRefreshTokenHash is the ID token claim hashing the refresh token in push mode.
	ClaimRefreshTokenHash = "urn:openid:params:jwt:claim:rt_hash"
)

// Metadata is the authorization server metadata served at both discovery documents
// (OpenID Connect Discovery 1.0, RFC 8414, CIBA section 4, RFC 9396 section 10).
type Metadata struct {
	Issuer                                           string   `json:"issuer"`
	TokenEndpoint                                    string   `json:"token_endpoint"`
	BackchannelAuthenticationEndpoint                string   `json:"backchannel_authentication_endpoint"`
	JWKSURI                                          string   `json:"jwks_uri"`
	UserinfoEndpoint                                 string   `json:"userinfo_endpoint,omitempty"`
	IntrospectionEndpoint                            string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                               string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported                                  []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                           []string `json:"response_types_supported"`
	GrantTypesSupported                              []string `json:"grant_types_supported"`
	SubjectTypesSupported                            []string `json:"subject_types_supported,omitempty"`
	IDTokenSigningAlgValuesSupported                 []string `json:"id_token_signing_alg_values_supported,omitempty"`
	TokenEndpointAuthMethodsSupported                []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported       []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionEndpointAuthMethodsSupported        []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	RevocationEndpointAuthMethodsSupported           []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	ClaimsSupported                                  []string `json:"claims_supported,omitempty"`
	BackchannelTokenDeliveryModesSupported           []string `json:"backchannel_token_delivery_modes_supported"`
	BackchannelAuthenticationRequestSigningAlgValues []string `json:"backchannel_authentication_request_signing_alg_values_supported,omitempty"`
	BackchannelUserCodeParameterSupported            bool     `json:"backchannel_user_code_parameter_supported"`
	AuthorizationDetailsTypesSupported               []string `json:"authorization_details_types_supported"`
	RequestObjectSigningAlgValuesSupported           []string `json:"request_object_signing_alg_values_supported,omitempty"`
	AuthorizationResponseIssParameterSupported       bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	// LongPollMaxWait advertises the Prefer: wait extension (RFC 7240) at the token endpoint: the
	// longest wait, in seconds, the server holds a pending poll. Zero means unsupported.
	LongPollMaxWait int `json:"countersign_long_poll_max_wait,omitempty"`
}

// BackchannelResponse is the successful answer of the backchannel authentication endpoint
// (CIBA section 7.3).
type BackchannelResponse struct {
	AuthReqID string `json:"auth_req_id"`
	ExpiresIn int    `json:"expires_in"`
	Interval  int    `json:"interval"`
	// VerificationCode is set when the server requires number matching: the agent shows it to the
	// user, who picks it in the authenticator before approving. Clients that do not know it ignore it.
	VerificationCode string `json:"verification_code,omitempty"`
}

// TokenResponse is a successful token endpoint answer (RFC 6749 section 5.1), with the granted
// authorization_details (RFC 9396 section 7). In CIBA push mode it also carries auth_req_id.
type TokenResponse struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	ExpiresIn            int             `json:"expires_in"`
	RefreshToken         string          `json:"refresh_token,omitempty"`
	IDToken              string          `json:"id_token,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	AuthReqID            string          `json:"auth_req_id,omitempty"`
}

// PushError is what the server posts to a push-mode client when a request ends without tokens
// (CIBA section 12).
type PushError struct {
	AuthReqID   string `json:"auth_req_id"`
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// PingNotification is what the server posts to a ping-mode client when a request ends
// (CIBA section 10.2).
type PingNotification struct {
	AuthReqID string `json:"auth_req_id"`
}

// IntrospectionResponse is an RFC 7662 answer, with authorization_details (RFC 9396 section 9.2).
type IntrospectionResponse struct {
	Active               bool            `json:"active"`
	Scope                string          `json:"scope,omitempty"`
	ClientID             string          `json:"client_id,omitempty"`
	Subject              string          `json:"sub,omitempty"`
	Audience             []string        `json:"aud,omitempty"`
	Issuer               string          `json:"iss,omitempty"`
	ExpiresAt            int64           `json:"exp,omitempty"`
	IssuedAt             int64           `json:"iat,omitempty"`
	JWTID                string          `json:"jti,omitempty"`
	TokenType            string          `json:"token_type,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	// Approval references the device-signed receipt the token was issued for.
	Approval *Approval `json:"approval,omitempty"`
}

// Approval is the access token claim (and introspection member) that references the receipt of the
// decision a token was issued for: the request, the device that approved it, and the SHA-256 of the
// canonical JSON of what the device showed.
type Approval struct {
	RequestID   string `json:"request_id"`
	DeviceID    string `json:"device_id"`
	ShownSHA256 string `json:"shown_sha256"`
	ApprovedAt  int64  `json:"approved_at"`
}

// AccessTokenClaims are the claims of a JWT access token (RFC 9068) as Countersign issues them.
type AccessTokenClaims struct {
	Issuer               string          `json:"iss"`
	Subject              string          `json:"sub"`
	Audience             Audience        `json:"aud"`
	ExpiresAt            int64           `json:"exp"`
	IssuedAt             int64           `json:"iat"`
	JWTID                string          `json:"jti"`
	ClientID             string          `json:"client_id"`
	Scope                string          `json:"scope,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	Approval             *Approval       `json:"approval,omitempty"`
}

// Audience is the aud claim: a string or an array of strings on the wire.
type Audience []string

// MarshalJSON writes a single audience as a string, as most verifiers expect.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// Contains reports whether aud is one of the audiences.
func (a Audience) Contains(aud string) bool {
	for _, v := range a {
		if v == aud {
			return true
		}
	}
	return false
}
