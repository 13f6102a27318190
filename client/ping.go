package client

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/oauth"
)

// PingHandler receives CIBA ping notifications (CIBA section 10.2) and wakes the RequestApproval
// or Pending waiting for them. Mount it at the client's registered
// backchannel_client_notification_endpoint and set it as Config.Ping. The zero value is ready to
// use, and one handler may serve several clients.
//
// A notification is accepted only with the bearer client_notification_token of a request this
// process is waiting for; anything else gets 401, and the server retries later (by then a resumed
// Pending may be waiting). With several replicas behind one endpoint, a notification may land on a
// replica that is not waiting: the waiter's fallback poll still finds the outcome.
type PingHandler struct {
	mu        sync.Mutex
	waiters   map[[32]byte]*pingRegistration
	lastPrune time.Time
}

// NewPingHandler returns an empty handler.
func NewPingHandler() *PingHandler { return &PingHandler{} }

// pingRegistration is one request waiting for its notification.
type pingRegistration struct {
	h     *PingHandler
	key   [32]byte
	fired chan struct{}
	once  sync.Once
	// authReqID and expires are guarded by h.mu; authReqID is empty until the request was created.
	authReqID string
	expires   time.Time
}

// register starts waiting for the notification carrying token.
func (h *PingHandler) register(token string, expires time.Time) *pingRegistration {
	reg := &pingRegistration{h: h, key: sha256.Sum256([]byte(token)), fired: make(chan struct{}), expires: expires}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[[32]byte]*pingRegistration{}
	}
	// Abandoned Pendings are dropped once they expire, so the map does not grow without bound.
	if now := time.Now(); now.Sub(h.lastPrune) > time.Minute {
		h.lastPrune = now
		for k, r := range h.waiters {
			if now.After(r.expires.Add(time.Minute)) {
				delete(h.waiters, k)
			}
		}
	}
	h.waiters[reg.key] = reg
	return reg
}

// started records the auth_req_id the server gave the request.
func (r *pingRegistration) started(authReqID string, expires time.Time) {
	if r == nil {
		return
	}
	r.h.mu.Lock()
	r.authReqID, r.expires = authReqID, expires
	r.h.mu.Unlock()
}

func (r *pingRegistration) unregister() {
	if r == nil {
		return
	}
	r.h.mu.Lock()
	if r.h.waiters[r.key] == r {
		delete(r.h.waiters, r.key)
	}
	r.h.mu.Unlock()
}

func (r *pingRegistration) fire() { r.once.Do(func() { close(r.fired) }) }

func (r *pingRegistration) isFired() bool {
	select {
	case <-r.fired:
		return true
	default:
		return false
	}
}

// ServeHTTP accepts a ping notification: POST, Authorization: Bearer <client_notification_token>,
// JSON {"auth_req_id": ...}. It answers 204 when it woke a waiter.
func (h *PingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		pingError(w, http.StatusMethodNotAllowed, oauth.ErrInvalidRequest, "use POST")
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="countersign-ping"`)
		pingError(w, http.StatusUnauthorized, oauth.ErrInvalidToken, "a bearer client_notification_token is required")
		return
	}
	var n oauth.PingNotification
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&n); err != nil || n.AuthReqID == "" {
		pingError(w, http.StatusBadRequest, oauth.ErrInvalidRequest, "the body must be JSON with auth_req_id")
		return
	}
	// Looked up by the token's SHA-256, so the map lookup's timing says nothing about the token.
	key := sha256.Sum256([]byte(token))
	h.mu.Lock()
	reg := h.waiters[key]
	mismatch := reg != nil && reg.authReqID != "" && reg.authReqID != n.AuthReqID
	h.mu.Unlock()
	switch {
	case reg == nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="countersign-ping", error="invalid_token"`)
		pingError(w, http.StatusUnauthorized, oauth.ErrInvalidToken, "no request waits for this client_notification_token")
		return
	case mismatch:
		pingError(w, http.StatusBadRequest, oauth.ErrInvalidRequest, "auth_req_id does not match the client_notification_token")
		return
	}
	reg.fire()
	w.WriteHeader(http.StatusNoContent)
}

func pingError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(oauth.NewError(code, desc))
}
