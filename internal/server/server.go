// Package server is Countersign's HTTP layer: routes (all in routes.go), one file per endpoint, and
// the middleware around them. Handlers parse requests into authz's typed parameters, call the use
// case, and render the answer; they return errors, which one wrapper renders with the status code the
// endpoint's specification asks for.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/oauth"
)

// KeySet publishes the server's public signing keys. *token.Keyring implements it.
type KeySet interface {
	JWKS(ctx context.Context) ([]byte, error)
}

// Options configure the HTTP layer.
type Options struct {
	Logger *slog.Logger
	// Metrics is where request metrics go; nil creates a private registry.
	Metrics *Metrics
	// Extra mounts further handlers (the authenticator web app) on the same mux, by pattern.
	Extra map[string]http.Handler
}

// Server serves Countersign's endpoints.
type Server struct {
	svc      *authz.Service
	keys     KeySet
	log      *slog.Logger
	metrics  *Metrics
	issuer   *url.URL
	basePath string // the issuer's path without its trailing slash: "" for an issuer at the root
	metadata []byte
	handler  http.Handler
}

// New builds the server and its routes.
func New(svc *authz.Service, keys KeySet, opts Options) (*Server, error) {
	iss, err := url.Parse(svc.Issuer())
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	s := &Server{svc: svc, keys: keys, log: opts.Logger, metrics: opts.Metrics, issuer: iss,
		basePath: strings.TrimSuffix(iss.Path, "/")}
	if s.metadata, err = json.Marshal(s.discovery()); err != nil {
		return nil, err
	}
	s.handler = s.routes(opts.Extra)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// endpointURL is the absolute URL of one of our paths (which start with "/").
func (s *Server) endpointURL(path string) string {
	return strings.TrimSuffix(s.svc.Issuer(), "/") + path
}

// errorKind selects how an endpoint maps OAuth error codes to HTTP statuses.
type errorKind int

const (
	// kindToken is RFC 6749 section 5.2: 400, and 401 for invalid_client.
	kindToken errorKind = iota
	// kindBackchannel is CIBA section 13: like the token endpoint, plus 403 for access_denied.
	kindBackchannel
	// kindDevice is the device API: 401 for a bad device signature, 404 and 409 for its own codes.
	kindDevice
	// kindResource is RFC 6750 for the userinfo endpoint.
	kindResource
)

func statusFor(kind errorKind, code string) int {
	switch code {
	case oauth.ErrInvalidClient:
		return http.StatusUnauthorized
	case oauth.ErrServerError:
		return http.StatusInternalServerError
	case oauth.ErrTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	}
	switch kind {
	case kindBackchannel:
		if code == oauth.ErrAccessDenied {
			return http.StatusForbidden
		}
	case kindDevice:
		switch code {
		case oauth.ErrInvalidToken:
			return http.StatusUnauthorized
		case authz.ErrNotFound:
			return http.StatusNotFound
		case authz.ErrConflict:
			return http.StatusConflict
		case oauth.ErrAccessDenied:
			return http.StatusForbidden
		}
	case kindResource:
		switch code {
		case oauth.ErrInvalidToken:
			return http.StatusUnauthorized
		case oauth.ErrInsufficientScope:
			return http.StatusForbidden
		}
	}
	return http.StatusBadRequest
}

// handlerFunc is an endpoint that returns its error for the wrapper to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// endpoint adapts a handlerFunc: it renders a returned error as JSON with the status for kind, and
// turns anything that is not an OAuth error into server_error, logging its cause with the request
// ID and never sending it.
func (s *Server) endpoint(kind errorKind, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var oe *oauth.Error
		if !errors.As(err, &oe) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			id := requestID(r.Context())
			s.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "error", err)
			oe = oauth.Errorf(oauth.ErrServerError, "internal error (request id %s)", id)
		} else if oe.Unwrap() != nil {
			s.log.Debug("request rejected", "request_id", requestID(r.Context()), "path", r.URL.Path, "error", oe.Code, "cause", oe.Unwrap())
		}
		status := statusFor(kind, oe.Code)
		h := w.Header()
		if oe.RetryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(oe.RetryAfter))
		}
		switch {
		case oe.Code == oauth.ErrInvalidClient && r.Header.Get("Authorization") != "":
			// RFC 6749 section 5.2: a client that tried HTTP authentication gets a challenge. Only here:
			// oauth4webapi rejects a WWW-Authenticate header on other token endpoint errors.
			h.Set("WWW-Authenticate", `Basic realm="countersign"`)
		case kind == kindResource && status == http.StatusUnauthorized:
			h.Set("WWW-Authenticate", `Bearer error="`+oe.Code+`", error_description="`+strings.ReplaceAll(oe.Description, `"`, `'`)+`"`)
		case kind == kindDevice && status == http.StatusUnauthorized:
			h.Set("WWW-Authenticate", `Device error="`+oe.Code+`"`)
		}
		writeJSON(w, status, oe)
	})
}

// writeJSON writes v as JSON. Every JSON answer we send may carry a token, a secret or personal data,
// so none may be cached (RFC 6749 section 5.1 asks it of token responses).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// withCommon sets headers every response gets, a request ID, metrics, and a panic guard.
func (s *Server) withCommon(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "request_id", id, "path", r.URL.Path, "panic", p)
				if !sw.wrote {
					writeJSON(sw, http.StatusInternalServerError, oauth.Errorf(oauth.ErrServerError, "internal error (request id %s)", id))
				}
			}
			s.metrics.observeHTTP(r.Pattern, sw.status, time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (to flush long polls).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
