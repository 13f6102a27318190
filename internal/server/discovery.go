package server

import (
	"net/http"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/oauth"
)

// discovery builds the metadata served at both well-known paths.
func (s *Server) discovery() oauth.Metadata {
	algs := make([]string, 0, len(authz.ClientAlgorithms))
	for _, a := range authz.ClientAlgorithms {
		algs = append(algs, string(a))
	}
	authMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	return oauth.Metadata{
		Issuer:                            s.svc.Issuer(),
		TokenEndpoint:                     s.endpointURL(pathToken),
		BackchannelAuthenticationEndpoint: s.endpointURL(pathBackchannel),
		JWKSURI:                           s.endpointURL(pathJWKS),
		UserinfoEndpoint:                  s.endpointURL(pathUserinfo),
		IntrospectionEndpoint:             s.endpointURL(pathIntrospect),
		RevocationEndpoint:                s.endpointURL(pathRevoke),
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		// There is no authorization endpoint: CIBA is the only way in, so no response types.
		ResponseTypesSupported:                           []string{},
		GrantTypesSupported:                              []string{oauth.GrantTypeCIBA, oauth.GrantTypeRefreshToken},
		SubjectTypesSupported:                            []string{"public"},
		IDTokenSigningAlgValuesSupported:                 []string{"RS256", "ES256", "PS256"},
		TokenEndpointAuthMethodsSupported:                authMethods,
		TokenEndpointAuthSigningAlgValuesSupported:       algs,
		IntrospectionEndpointAuthMethodsSupported:        authMethods,
		RevocationEndpointAuthMethodsSupported:           authMethods,
		ClaimsSupported:                                  []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "name", "email"},
		BackchannelTokenDeliveryModesSupported:           []string{"poll", "ping", "push"},
		BackchannelAuthenticationRequestSigningAlgValues: algs,
		BackchannelUserCodeParameterSupported:            true,
		AuthorizationDetailsTypesSupported:               s.svc.Options().DetailTypes.Names(),
		RequestObjectSigningAlgValuesSupported:           algs,
		LongPollMaxWait:                                  int(s.svc.Options().MaxLongPoll.Seconds()),
	}
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.metadata)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) error {
	set, err := s.keys.JWKS(r.Context())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	// Short: new keys are published a rotation ahead of use, and verifiers refetch on an unknown kid.
	h.Set("Cache-Control", "public, max-age=300")
	_, err = w.Write(set)
	return err
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.Store().Ping(r.Context()); err != nil {
		s.log.Error("health check failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "storage is unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
