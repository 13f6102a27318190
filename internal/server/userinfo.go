package server

import (
	"net/http"

	"github.com/countersign/countersign/oauth"
)

// handleUserinfo is the OpenID Connect userinfo endpoint, with RFC 6750 bearer errors.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) error {
	tok, err := bearerToken(r)
	if err != nil {
		return oauth.NewError(oauth.ErrInvalidToken, "send the access token as Authorization: Bearer")
	}
	claims, err := s.svc.UserInfo(r.Context(), tok)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, claims)
	return nil
}
