// Package oauth holds the wire types that Countersign's server and its Go SDKs share: discovery
// metadata, backchannel and token responses, introspection, and OAuth error responses with their codes.
//
// It depends on the standard library only, so agents and resource servers can import it without
// pulling in the server.
package oauth

import "fmt"

// Error codes from RFC 6749 section 5.2, OpenID CIBA Core section 13, RFC 9396 section 5, RFC 8707,
// RFC 6750 and RFC 7009.
const (
	ErrInvalidRequest              = "invalid_request"
	ErrInvalidClient               = "invalid_client"
	ErrInvalidGrant                = "invalid_grant"
	ErrUnauthorizedClient          = "unauthorized_client"
	ErrUnsupportedGrantType        = "unsupported_grant_type"
	ErrInvalidScope                = "invalid_scope"
	ErrInvalidTarget               = "invalid_target"
	ErrAccessDenied                = "access_denied"
	ErrServerError                 = "server_error"
	ErrTemporarilyUnavailable      = "temporarily_unavailable"
	ErrAuthorizationPending        = "authorization_pending"
	ErrSlowDown                    = "slow_down"
	ErrExpiredToken                = "expired_token"
	ErrExpiredLoginHintToken       = "expired_login_hint_token"
	ErrUnknownUserID               = "unknown_user_id"
	ErrMissingUserCode             = "missing_user_code"
	ErrInvalidUserCode             = "invalid_user_code"
	ErrInvalidBindingMessage       = "invalid_binding_message"
	ErrInvalidAuthorizationDetails = "invalid_authorization_details"
	ErrInvalidToken                = "invalid_token"
	ErrInsufficientScope           = "insufficient_scope"
	ErrUnsupportedTokenType        = "unsupported_token_type"
)

// Reasons carried in Error.Reason.
const (
	// ReasonNoAuthenticator: the user has no enrolled authenticator device (code invalid_request).
	ReasonNoAuthenticator = "no_authenticator"
	// ReasonRateLimited: the user's request limits were hit (code access_denied).
	ReasonRateLimited = "rate_limited"
	// ReasonReported: the user reported one of this client's requests as not theirs, and its
	// requests to them are held for a while (code access_denied).
	ReasonReported = "reported"
)

// Error is an OAuth 2.0 error response body (RFC 6749 section 5.2). Build a fresh one for every
// response; the cause is for logs and is never serialized.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// RetryAfter, when positive, is sent as a Retry-After header (seconds) by servers and read back
	// from it by clients.
	RetryAfter int `json:"-"`
	// Interval is the poll interval in seconds a slow_down answer asks for, when the server says so.
	Interval int `json:"interval,omitempty"`
	// Reason refines Code for clients that want to tell cases apart where the specification has one
	// code (for example ReasonNoAuthenticator inside invalid_request). Other clients ignore it.
	Reason string `json:"reason,omitempty"`
	cause  error
}

// NewError returns an error with the given code and description.
func NewError(code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// Errorf returns an error with the given code and a formatted description.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// WithCause attaches an internal cause, kept for logs and errors.Is, and returns e.
func (e *Error) WithCause(err error) *Error {
	e.cause = err
	return e
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, &oauth.Error{Code: c}) match any error with that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Description == ""
}
