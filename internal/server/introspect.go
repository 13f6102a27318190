package server

import (
	"net/http"
)

// handleIntrospect is RFC 7662 token introspection.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) error {
	form, client, err := s.authenticate(r, pathIntrospect)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.svc.Introspect(r.Context(), client, form.Get("token"), form.Get("token_type_hint")))
	return nil
}

// handleRevoke is RFC 7009 token revocation; given an auth_req_id it cancels the client's pending
// request.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	form, client, err := s.authenticate(r, pathRevoke)
	if err != nil {
		return err
	}
	if err := s.svc.Revoke(r.Context(), client, form.Get("token"), form.Get("token_type_hint")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}
