package server

import (
	"net/http"

	"github.com/countersign/countersign/web"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths of the OAuth endpoints, relative to the issuer. They match Auth0's, so Auth0 SDKs work by
// changing the domain.
const (
	pathBackchannel   = "/bc-authorize"
	pathToken         = "/oauth/token"
	pathIntrospect    = "/oauth/introspect"
	pathRevoke        = "/oauth/revoke"
	pathUserinfo      = "/userinfo"
	pathJWKS          = "/.well-known/jwks.json"
	pathOIDCDiscovery = "/.well-known/openid-configuration"
	pathASDiscovery   = "/.well-known/oauth-authorization-server"
	pathDeviceAPI     = "/device/v1"
)

// routes lists every route the server answers. An issuer with a path (https://host/tenant/) serves
// everything under that path.
func (s *Server) routes(extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	p := s.basePath
	handle := func(pattern, path string, h http.Handler) { mux.Handle(pattern+" "+p+path, h) }

	// Discovery and keys.
	handle("GET", pathOIDCDiscovery, http.HandlerFunc(s.handleDiscovery))
	handle("GET", pathASDiscovery, http.HandlerFunc(s.handleDiscovery))
	handle("GET", pathJWKS, s.endpoint(kindToken, s.handleJWKS))

	// OAuth and CIBA.
	handle("POST", pathBackchannel, s.endpoint(kindBackchannel, s.handleBackchannel))
	handle("POST", pathToken, s.endpoint(kindToken, s.handleToken))
	handle("POST", pathIntrospect, s.endpoint(kindToken, s.handleIntrospect))
	handle("POST", pathRevoke, s.endpoint(kindToken, s.handleRevoke))
	handle("GET", pathUserinfo, s.endpoint(kindResource, s.handleUserinfo))
	handle("POST", pathUserinfo, s.endpoint(kindResource, s.handleUserinfo))

	// The device API that authenticators speak (docs/device-api.md).
	handle("POST", pathDeviceAPI+"/enroll", s.endpoint(kindDevice, s.handleEnroll))
	handle("GET", pathDeviceAPI+"/requests", s.endpoint(kindDevice, s.device(s.handlePendingRequests)))
	handle("GET", pathDeviceAPI+"/requests/{id}", s.endpoint(kindDevice, s.device(s.handleGetRequest)))
	handle("POST", pathDeviceAPI+"/requests/{id}/decision", s.endpoint(kindDevice, s.handleDecision))
	handle("GET", pathDeviceAPI+"/history", s.endpoint(kindDevice, s.device(s.handleHistory)))
	handle("GET", pathDeviceAPI+"/devices", s.endpoint(kindDevice, s.device(s.handleListDevices)))
	handle("DELETE", pathDeviceAPI+"/devices/{id}", s.endpoint(kindDevice, s.device(s.handleRemoveDevice)))
	handle("GET", pathDeviceAPI+"/config", s.endpoint(kindDevice, s.handleDeviceConfig))
	handle("PUT", pathDeviceAPI+"/push-subscription", s.endpoint(kindDevice, s.device(s.handlePutPushSubscription)))
	handle("DELETE", pathDeviceAPI+"/push-subscription", s.endpoint(kindDevice, s.device(s.handleDeletePushSubscription)))
	handle("POST", pathDeviceAPI+"/passkeys/options", s.endpoint(kindDevice, s.device(s.handlePasskeyOptions)))
	handle("POST", pathDeviceAPI+"/passkeys", s.endpoint(kindDevice, s.device(s.handleAddPasskey)))
	handle("GET", pathDeviceAPI+"/passkeys", s.endpoint(kindDevice, s.device(s.handleListPasskeys)))

	// The authenticator web app (package web), and the page an invitation link opens.
	app := web.Handler()
	handle("GET", "/app/", app)
	handle("GET", "/enroll", app)

	// Operations.
	handle("GET", "/healthz", http.HandlerFunc(s.handleHealth))
	handle("GET", "/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))

	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	// Wrong methods on known paths get the mux's 405, unknown paths its 404 (both plain text).
	return s.withCommon(mux)
}
