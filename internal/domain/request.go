package domain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gowebpki/jcs"
)

// RequestStatus is the state of a backchannel request.
type RequestStatus string

// A request is created pending and moves exactly once to one of the other states.
const (
	StatusPending   RequestStatus = "pending"
	StatusApproved  RequestStatus = "approved"
	StatusDenied    RequestStatus = "denied"
	StatusExpired   RequestStatus = "expired"
	StatusCancelled RequestStatus = "cancelled"
)

// Decision is what a device decided.
type Decision string

// The two decisions a device can sign.
const (
	DecisionApprove Decision = "approve"
	DecisionDeny    Decision = "deny"
)

// Errors of the request state machine. They wrap ErrConflict so that callers that only care about
// "the transition was refused" can test for that.
var (
	ErrNotPending        = fmt.Errorf("%w: request is no longer pending", ErrConflict)
	ErrRequestExpired    = fmt.Errorf("%w: request has expired", ErrConflict)
	ErrNotApproved       = fmt.Errorf("%w: request is not approved", ErrConflict)
	ErrAlreadyRedeemed   = fmt.Errorf("%w: request was already redeemed", ErrConflict)
	ErrWrongClient       = fmt.Errorf("%w: request belongs to another client", ErrConflict)
	ErrWrongSubject      = fmt.Errorf("%w: request belongs to another user", ErrConflict)
	ErrEnrollmentUsed    = fmt.Errorf("%w: enrollment code was already used", ErrConflict)
	ErrEnrollmentExpired = fmt.Errorf("%w: enrollment code has expired", ErrConflict)
)

// Request is a CIBA backchannel authentication request: an agent (the client) asking a user to
// approve something, described by a binding message and authorization_details.
type Request struct {
	// ID is the public identifier used by the device API and in receipts. It is not a credential.
	ID string
	// AuthReqIDHash is the SHA-256 of the auth_req_id given to the client, which is a credential.
	AuthReqIDHash []byte
	ClientID      string
	// ClientName is the client's display name when the request was made, kept so that the receipt
	// covers what the user was shown even if the client is renamed later.
	ClientName string
	Subject    string
	Scope      []string
	Audience   []string
	// BindingMessage is shown on both the agent's and the user's side (CIBA section 7.1).
	BindingMessage string
	// AuthorizationDetails is the validated RFC 9396 array (with schema defaults applied), or empty.
	AuthorizationDetails json.RawMessage
	ACRValues            []string

	DeliveryMode DeliveryMode
	// NotificationToken is the client_notification_token the client gave for ping and push delivery.
	NotificationToken string
	// VerificationCode is the two-digit code of number matching (shown by the agent, picked by the
	// user among decoys before approving); empty when the client and types do not require it.
	VerificationCode string
	// RequireUserVerification asks for a passkey assertion (user verification) with an approval.
	RequireUserVerification bool
	// RemindedAt is when the user was reminded of the still pending request; zero if never.
	RemindedAt time.Time

	// CallbackAuthReqID is the auth_req_id itself, kept only for ping and push requests because their
	// callbacks must name it; poll requests keep only the hash. (It is not enough to get tokens: the
	// token endpoint also authenticates the client.)
	CallbackAuthReqID string

	Status    RequestStatus
	CreatedAt time.Time
	ExpiresAt time.Time
	// Interval is the minimum time between polls given to the client. A slow_down makes it grow for
	// that client, which the server tracks in memory rather than rewriting the request on every poll.
	Interval time.Duration

	// Receipt is the device-signed decision, set when the request is approved or denied.
	Receipt *Receipt
	// DecidedAt is when the request left the pending state (for any reason).
	DecidedAt time.Time
	// RedeemedAt is when the approved request was exchanged for tokens.
	RedeemedAt time.Time
}

// Receipt is proof of a decision: which device decided what about exactly which content.
type Receipt struct {
	DeviceID string
	Decision Decision
	// ShownSHA256 is the SHA-256 of the RFC 8785 canonical JSON of Request.Shown().
	ShownSHA256 []byte
	// Signature is the compact JWS the device signed; anyone with the device's public key can verify it.
	Signature string
	DecidedAt time.Time
	// Reported is set on a denial the user marked as "not mine": the client's further requests to
	// this user are held for a while.
	Reported bool
	// UserVerified is set when the approval carried a verified passkey assertion.
	UserVerified bool
}

// Shown is exactly what an authenticator displays to the user, and so exactly what a decision covers.
type Shown struct {
	RequestID            string          `json:"request_id"`
	ClientID             string          `json:"client_id"`
	ClientName           string          `json:"client_name"`
	BindingMessage       string          `json:"binding_message"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	Scope                []string        `json:"scope"`
	Audience             []string        `json:"audience"`
}

// Shown returns what an authenticator must display for this request.
func (r Request) Shown() Shown {
	details := r.AuthorizationDetails
	if len(details) == 0 {
		details = json.RawMessage("[]")
	}
	scope, audience := r.Scope, r.Audience
	if scope == nil {
		scope = []string{}
	}
	if audience == nil {
		audience = []string{}
	}
	return Shown{
		RequestID: r.ID, ClientID: r.ClientID, ClientName: r.ClientName, BindingMessage: r.BindingMessage,
		AuthorizationDetails: details, Scope: scope, Audience: audience,
	}
}

// SHA256 hashes the RFC 8785 canonical JSON of what was shown.
func (s Shown) SHA256() ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	canonical, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize shown content: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return sum[:], nil
}

// IsExpired reports whether the request's lifetime is over at now.
func (r Request) IsExpired(now time.Time) bool { return !now.Before(r.ExpiresAt) }

// Approve records an approval. Only a pending, unexpired request can be approved.
func (r *Request) Approve(now time.Time, receipt Receipt) error {
	return r.decide(now, StatusApproved, receipt)
}

// Deny records a denial. Only a pending, unexpired request can be denied.
func (r *Request) Deny(now time.Time, receipt Receipt) error {
	return r.decide(now, StatusDenied, receipt)
}

func (r *Request) decide(now time.Time, to RequestStatus, receipt Receipt) error {
	if r.Status != StatusPending {
		return ErrNotPending
	}
	if r.IsExpired(now) {
		return ErrRequestExpired
	}
	r.Status = to
	r.DecidedAt = now
	r.Receipt = &receipt
	return nil
}

// Expire ends a pending request whose lifetime is over.
func (r *Request) Expire(now time.Time) error {
	if r.Status != StatusPending {
		return ErrNotPending
	}
	if !r.IsExpired(now) {
		return fmt.Errorf("%w: request has not expired yet", ErrConflict)
	}
	r.Status = StatusExpired
	r.DecidedAt = now
	return nil
}

// Cancel ends a pending request at the request of the client that made it.
func (r *Request) Cancel(now time.Time, clientID string) error {
	if r.ClientID != clientID {
		return ErrWrongClient
	}
	if r.Status != StatusPending {
		return ErrNotPending
	}
	r.Status = StatusCancelled
	r.DecidedAt = now
	return nil
}

// Redeem exchanges an approved request for tokens: once, by the client that made it, within the
// request's lifetime.
func (r *Request) Redeem(now time.Time, clientID string) error {
	switch {
	case r.ClientID != clientID:
		return ErrWrongClient
	case !r.RedeemedAt.IsZero():
		return ErrAlreadyRedeemed
	case r.Status != StatusApproved:
		return ErrNotApproved
	case r.IsExpired(now):
		return ErrRequestExpired
	}
	r.RedeemedAt = now
	return nil
}
