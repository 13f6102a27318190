package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/oauth"
)

// handleToken is the token endpoint: the CIBA grant (poll and ping modes) and refresh tokens.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) error {
	form, client, err := s.authenticate(r, pathToken)
	if err != nil {
		return err
	}
	var resp oauth.TokenResponse
	switch gt := form.Get("grant_type"); gt {
	case oauth.GrantTypeCIBA:
		wait := preferWait(r)
		if wait > 0 {
			applied := min(wait, s.svc.Options().MaxLongPoll)
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(applied/time.Second)))
		}
		resp, err = s.svc.ExchangeAuthReqID(r.Context(), client, form.Get("auth_req_id"), wait)
	case oauth.GrantTypeRefreshToken:
		resp, err = s.svc.Refresh(r.Context(), client, form.Get("refresh_token"), form.Get("scope"))
	case "":
		return oauth.NewError(oauth.ErrInvalidRequest, "grant_type is required")
	default:
		return oauth.Errorf(oauth.ErrUnsupportedGrantType, "grant_type %q is not supported", gt)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// preferWait reads RFC 7240's "Prefer: wait=N" (seconds); zero when absent or malformed.
func preferWait(r *http.Request) time.Duration {
	for _, v := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}
