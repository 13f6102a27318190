package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// maxDeviceBody bounds device API bodies (an enrollment or a signed decision).
const maxDeviceBody = 64 << 10

// deviceHandler is a device API endpoint that needs an authenticated device.
type deviceHandler func(w http.ResponseWriter, r *http.Request, dev domain.Device) error

// device authenticates the device from its signed Authorization header ("Device <JWS>") before
// calling h. The JWS is bound to the method and the URL (without query) of this request.
func (s *Server) device(h deviceHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, signed, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Device") {
			return oauth.NewError(oauth.ErrInvalidToken, "send Authorization: Device <JWS signed by the device key>")
		}
		dev, err := s.svc.AuthenticateDevice(r.Context(), strings.TrimSpace(signed), r.Method, s.endpointURL(strings.TrimPrefix(r.URL.Path, s.basePath)))
		if err != nil {
			return err
		}
		return h(w, r, dev)
	}
}

func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDeviceBody+1))
	if err != nil {
		return oauth.NewError(oauth.ErrInvalidRequest, "could not read the body")
	}
	if len(body) > maxDeviceBody {
		return oauth.Errorf(oauth.ErrInvalidRequest, "the body is larger than %d bytes", maxDeviceBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return oauth.Errorf(oauth.ErrInvalidRequest, "the body must be JSON: %v", err)
	}
	return nil
}

// handleEnroll redeems an invitation: {"enrollment": "<JWS>"}.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Enrollment string `json:"enrollment"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	res, err := s.svc.Enroll(r.Context(), body.Enrollment)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (s *Server) handlePendingRequests(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	list, err := s.svc.PendingRequests(r.Context(), dev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": list})
	return nil
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	v, err := s.svc.RequestForDevice(r.Context(), dev, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleDecision records a signed decision: {"signed_decision": "<JWS>"}. The JWS itself
// authenticates the device, so no Authorization header is needed.
func (s *Server) handleDecision(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SignedDecision string `json:"signed_decision"`
		// WebAuthn is a passkey assertion over SHA-256(signed_decision), for requests that require
		// user verification.
		WebAuthn json.RawMessage `json:"webauthn"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.SignedDecision == "" {
		return oauth.NewError(oauth.ErrInvalidRequest, "signed_decision is required")
	}
	v, err := s.svc.Decide(r.Context(), r.PathValue("id"), body.SignedDecision, body.WebAuthn)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, err := s.svc.History(r.Context(), dev, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": list})
	return nil
}

func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	list, err := s.svc.Devices(r.Context(), dev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": list})
	return nil
}

func (s *Server) handleRemoveDevice(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	if err := s.svc.RemoveDevice(r.Context(), dev, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleDeviceConfig tells an authenticator app what it needs before it is enrolled: the issuer and
// the VAPID public key to subscribe to Web Push with.
func (s *Server) handleDeviceConfig(w http.ResponseWriter, r *http.Request) error {
	public, _, err := s.svc.VAPIDKeys(r.Context())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	return json.NewEncoder(w).Encode(map[string]string{"issuer": s.svc.Issuer(), "vapid_public_key": public})
}

// handlePutPushSubscription stores the device's Web Push subscription (PushSubscription.toJSON()).
func (s *Server) handlePutPushSubscription(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	var body struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256DH string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if err := s.svc.SetPushSubscription(r.Context(), dev, body.Endpoint, body.Keys.P256DH, body.Keys.Auth); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleDeletePushSubscription(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	if err := s.svc.RemovePushSubscription(r.Context(), dev); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handlePasskeyOptions starts a passkey registration: {"publicKey": creation options}.
func (s *Server) handlePasskeyOptions(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	creation, err := s.svc.PasskeyOptions(r.Context(), dev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, creation)
	return nil
}

// handleAddPasskey finishes a passkey registration with the browser's credential (JSON with
// base64url fields, as PublicKeyCredential.toJSON() gives it) and an optional ?name=.
func (s *Server) handleAddPasskey(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDeviceBody+1))
	if err != nil || len(body) > maxDeviceBody {
		return oauth.NewError(oauth.ErrInvalidRequest, "could not read the body")
	}
	v, err := s.svc.RegisterPasskey(r.Context(), dev, body, r.URL.Query().Get("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) handleListPasskeys(w http.ResponseWriter, r *http.Request, dev domain.Device) error {
	list, err := s.svc.Passkeys(r.Context(), dev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"passkeys": list})
	return nil
}
