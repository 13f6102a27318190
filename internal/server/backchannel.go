package server

import (
	"net/http"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/oauth"
)

// handleBackchannel is the CIBA backchannel authentication endpoint (CIBA section 7).
func (s *Server) handleBackchannel(w http.ResponseWriter, r *http.Request) error {
	form, client, err := s.authenticate(r, pathBackchannel)
	if err != nil {
		return err
	}
	res, err := s.svc.StartRequest(r.Context(), client, authz.BackchannelParams{
		Scope:                   form.Get("scope"),
		ClientNotificationToken: form.Get("client_notification_token"),
		ACRValues:               form.Get("acr_values"),
		LoginHint:               form.Get("login_hint"),
		LoginHintToken:          form.Get("login_hint_token"),
		IDTokenHint:             form.Get("id_token_hint"),
		BindingMessage:          form.Get("binding_message"),
		UserCode:                form.Get("user_code"),
		RequestedExpiry:         form.Get("requested_expiry"),
		AuthorizationDetails:    form.Get("authorization_details"),
		Audience:                append(form["audience"], form["resource"]...),
		Request:                 form.Get("request"),
	})
	if err != nil {
		return err
	}
	// 200, not 201: oauth4webapi accepts only 200 here.
	writeJSON(w, http.StatusOK, oauth.BackchannelResponse{AuthReqID: res.AuthReqID, ExpiresIn: res.ExpiresIn, Interval: res.Interval,
		VerificationCode: res.VerificationCode})
	return nil
}
