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
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.SignedDecision == "" {
		return oauth.NewError(oauth.ErrInvalidRequest, "signed_decision is required")
	}
	v, err := s.svc.Decide(r.Context(), r.PathValue("id"), body.SignedDecision)
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
