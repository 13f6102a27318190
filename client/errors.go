package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/oauth"
)

// Outcomes other than approval. Test for them with errors.Is; errors.As with *oauth.Error gives the
// server's error response behind each.
var (
	// ErrDenied means the user denied the request (access_denied at the token endpoint), or
	// reported an earlier request of this client as not theirs, which holds new ones for a while
	// (access_denied with reason "reported" from the backchannel endpoint).
	ErrDenied = errors.New("client: the user denied the request")
	// ErrExpired means the request expired before the user decided (expired_token).
	ErrExpired = errors.New("client: the request expired before the user decided")
	// ErrNoAuthenticator means the user has no enrolled authenticator device, so nobody can be
	// asked (invalid_request with reason no_authenticator, from the backchannel endpoint).
	ErrNoAuthenticator = errors.New("client: the user has no enrolled authenticator")
	// ErrRateLimited means the user already has too many pending requests, or received too many
	// recently (access_denied with reason rate_limited, from the backchannel endpoint).
	ErrRateLimited = errors.New("client: too many requests for this user")
	// ErrPending is what Pending.Poll returns while the user has not decided
	// (authorization_pending, or slow_down when polled too fast).
	ErrPending = errors.New("client: the user has not decided yet")
)

// outcomeError is an OAuth error response that also means one of the outcomes above, so that
// errors.Is finds the outcome and errors.As finds the *oauth.Error.
type outcomeError struct {
	kind error
	oe   *oauth.Error
}

// Error is the server's error, which says more than the outcome.
func (e *outcomeError) Error() string        { return e.oe.Error() }
func (e *outcomeError) Is(target error) bool { return target == e.kind }
func (e *outcomeError) Unwrap() error        { return e.oe }

// HTTPError is an answer that is not an OAuth error response: a proxy's error page, a wrong issuer
// URL, a server that crashed.
type HTTPError struct {
	StatusCode int
	// Body is the start of the response body.
	Body string
	// RetryAfter is the Retry-After header in seconds, when there was one.
	RetryAfter int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("client: the server answered HTTP %d: %s", e.StatusCode, e.Body)
}

// parseError turns a non-200 answer into *oauth.Error (with RetryAfter from the header), or
// *HTTPError when the body is not an OAuth error.
func parseError(status int, h http.Header, body []byte) error {
	retry := retryAfter(h)
	var e oauth.Error
	if strings.Contains(h.Get("Content-Type"), "json") || len(body) > 0 && body[0] == '{' {
		if json.Unmarshal(body, &e) == nil && e.Code != "" {
			oe := oauth.NewError(e.Code, e.Description)
			oe.Interval, oe.Reason, oe.RetryAfter = e.Interval, e.Reason, retry
			return oe
		}
	}
	snippet := strings.TrimSpace(string(body))
	if len(snippet) > 200 {
		snippet = snippet[:200] + "..."
	}
	return &HTTPError{StatusCode: status, Body: snippet, RetryAfter: retry}
}

// retryAfter reads Retry-After in seconds, from either of its forms (RFC 9110 section 10.2.3).
func retryAfter(h http.Header) int {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return int((d + time.Second - 1) / time.Second)
		}
	}
	return 0
}

// startError gives the errors of the backchannel endpoint their outcome.
func startError(err error) error {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		return err
	}
	switch {
	case oe.Code == oauth.ErrInvalidRequest && oe.Reason == oauth.ReasonNoAuthenticator:
		return &outcomeError{kind: ErrNoAuthenticator, oe: oe}
	case oe.Code == oauth.ErrAccessDenied && oe.Reason == oauth.ReasonRateLimited:
		return &outcomeError{kind: ErrRateLimited, oe: oe}
	case oe.Code == oauth.ErrAccessDenied && oe.Reason == oauth.ReasonReported:
		// The user reported one of this client's requests as not theirs and the server holds new
		// ones for a while: as final a "no" as a denial (Retry-After says when the hold ends).
		return &outcomeError{kind: ErrDenied, oe: oe}
	}
	return err
}

// transient reports whether a failed poll is worth repeating: the network or the server failed,
// not the request.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || he.StatusCode == http.StatusTooManyRequests
	}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code == oauth.ErrServerError || oe.Code == oauth.ErrTemporarilyUnavailable
	}
	// The HTTP client's errors (a refused connection, a reset, a timeout) are *url.Error.
	var ue *url.Error
	return errors.As(err, &ue)
}
