package domain

import (
	"encoding/json"
	"time"
)

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// Token kinds we issue and keep a record of.
const (
	TokenAccess  TokenKind = "access_token"
	TokenRefresh TokenKind = "refresh_token"
)

// Token is the record of an issued token. Access tokens are JWTs and are found by their jti (ID);
// refresh tokens are opaque and are found by the SHA-256 of their value (Hash).
type Token struct {
	ID   string
	Kind TokenKind
	// Hash is the SHA-256 of the token value; set for refresh tokens.
	Hash                 []byte
	ClientID             string
	Subject              string
	Scope                []string
	Audience             []string
	AuthorizationDetails json.RawMessage
	// RequestID is the backchannel request (and so the receipt) the token was issued for.
	RequestID string
	// FamilyID groups a chain of rotated refresh tokens so that reuse of an old one revokes them all.
	FamilyID  string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// UsedAt is set when a refresh token is exchanged (rotated).
	UsedAt    time.Time
	RevokedAt time.Time
}

// Active reports whether the token may still be used at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && now.Before(t.ExpiresAt)
}

// KeyStatus is where a signing key is in its life.
type KeyStatus string

// A key is published as next before it signs anything, signs while active, and stays published
// while retired so that tokens it signed can still be verified.
const (
	KeyNext    KeyStatus = "next"
	KeyActive  KeyStatus = "active"
	KeyRetired KeyStatus = "retired"
)

// SigningKey is a private key the server signs tokens with.
type SigningKey struct {
	ID        string
	Algorithm string
	// Use tells what the key is for: "sig" for tokens; other uses (such as "vapid") are kept apart.
	Use    string
	Status KeyStatus
	// PrivateKey is the PKCS #8 DER encoding of the private key.
	PrivateKey  []byte
	CreatedAt   time.Time
	ActivatedAt time.Time
	RetiredAt   time.Time
}

// AuditEvent is one line of the append-only audit log.
type AuditEvent struct {
	// ID is assigned by the store, increasing in insertion order.
	ID        int64
	Time      time.Time
	Type      string
	Subject   string
	ClientID  string
	RequestID string
	DeviceID  string
	// Detail carries event-specific facts as a flat JSON object.
	Detail json.RawMessage
}

// Audit event types.
const (
	AuditRequestCreated   = "request.created"
	AuditRequestApproved  = "request.approved"
	AuditRequestDenied    = "request.denied"
	AuditRequestExpired   = "request.expired"
	AuditRequestCancelled = "request.cancelled"
	AuditRequestRedeemed  = "request.redeemed"
	AuditTokenRefreshed   = "token.refreshed"
	AuditTokenRevoked     = "token.revoked"
	AuditRefreshReuse     = "token.refresh_reuse"
	AuditUserCreated      = "user.created"
	AuditUserInvited      = "user.invited"
	AuditDeviceEnrolled   = "device.enrolled"
	AuditDeviceRevoked    = "device.revoked"
	AuditKeyCreated       = "key.created"
	AuditKeyRotated       = "key.rotated"
	AuditOutboxDead       = "outbox.dead"
	AuditRequestReported  = "request.reported"
	AuditRequestReminded  = "request.reminded"
	AuditPushSubscribed   = "push.subscribed"
	AuditPasskeyAdded     = "passkey.added"
)

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	Subject   string
	ClientID  string
	RequestID string
	Type      string
	// AfterID returns only events with a greater ID (for paging forward).
	AfterID int64
	// Limit caps the number of events returned (newest first); zero means a backend default of 100.
	Limit int
}

// OutboxStatus is where an outbox message is in its delivery.
type OutboxStatus string

// Outbox message states.
const (
	OutboxPending   OutboxStatus = "pending"
	OutboxDelivered OutboxStatus = "delivered"
	OutboxDead      OutboxStatus = "dead"
)

// OutboxMessage is a message to deliver outside the process (a CIBA ping or push callback, a
// notification). It is written in the same transaction as the state change that causes it, so a crash
// cannot lose it, and delivered by workers that retry with backoff.
type OutboxMessage struct {
	ID        int64
	Kind      string
	RequestID string
	// Target is where to deliver (a URL, an address).
	Target string
	// Payload is what to deliver; its shape depends on Kind.
	Payload       json.RawMessage
	Status        OutboxStatus
	Attempts      int
	NextAttemptAt time.Time
	// LeaseUntil is set while a worker is delivering the message; another worker may take it after.
	LeaseUntil  time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
}
