package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// maxFormBytes bounds a form body; the largest legitimate one carries a signed request object with
// authorization_details (64 KiB at most) and a client assertion.
const maxFormBytes = 256 << 10

// repeatable lists the parameters that may appear more than once (RFC 8707 resource indicators, and
// audience, which Auth0 treats alike). RFC 6749 section 3.1 forbids repeating any other.
var repeatable = map[string]bool{"resource": true, "audience": true}

// parseForm reads an application/x-www-form-urlencoded POST body (RFC 6749 appendix B). Query
// parameters are ignored: credentials in URLs end up in logs.
func parseForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "use POST")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "could not read the body").WithCause(err)
	}
	if len(body) > maxFormBytes {
		return nil, oauth.Errorf(oauth.ErrInvalidRequest, "the body is larger than %d bytes", maxFormBytes)
	}
	return parseFormBody(string(body))
}

// parseFormBody decodes a form body and rejects repeated parameters.
func parseFormBody(body string) (url.Values, error) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body is not valid form encoding").WithCause(err)
	}
	for k, v := range form {
		if len(v) > 1 && !repeatable[k] {
			return nil, oauth.Errorf(oauth.ErrInvalidRequest, "parameter %s appears more than once", k)
		}
	}
	return form, nil
}

// clientCredentials collects what the request carries to authenticate its client.
func clientCredentials(r *http.Request, form url.Values, endpoint string) (authz.ClientCredentials, error) {
	cr := authz.ClientCredentials{
		FormID: form.Get("client_id"), FormSecret: form.Get("client_secret"),
		AssertionType: form.Get("client_assertion_type"), Assertion: form.Get("client_assertion"),
		Endpoint: endpoint,
	}
	if r.Header.Get("Authorization") != "" {
		id, secret, ok := r.BasicAuth()
		if !ok {
			return cr, oauth.NewError(oauth.ErrInvalidClient, "the Authorization header must use HTTP Basic for client authentication")
		}
		cr.HasBasic, cr.BasicID, cr.BasicSecret = true, id, secret
	}
	return cr, nil
}

// authenticate parses the form and authenticates its client.
func (s *Server) authenticate(r *http.Request, path string) (url.Values, domain.Client, error) {
	form, err := parseForm(r)
	if err != nil {
		return nil, domain.Client{}, err
	}
	cr, err := clientCredentials(r, form, s.endpointURL(path))
	if err != nil {
		return nil, domain.Client{}, err
	}
	c, err := s.svc.AuthenticateClient(r.Context(), cr)
	return form, c, err
}

func newRequestID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// bearerToken extracts an RFC 6750 bearer token from the Authorization header.
func bearerToken(r *http.Request) (string, error) {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errors.New("missing bearer token")
	}
	return strings.TrimSpace(tok), nil
}
