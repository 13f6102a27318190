package domain

import (
	"encoding/json"
	"time"
)

// User is a person who approves or denies what agents ask for.
type User struct {
	// Subject is the stable identifier that appears as sub in tokens.
	Subject string
	Email   string
	Name    string
	// Phone is an E.164 number for SMS notifications; empty for none.
	Phone string
	// Channels lists the notification channels to try, in order ("webpush", "email", "sms",
	// "webhook"); empty uses the server's default.
	Channels []string
	// UserCodeHash is a salted slow hash of the user's optional user_code (CIBA section 7.1);
	// empty when the user has none. User codes are chosen by people, so they get a slow hash.
	UserCodeHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Device is an enrolled authenticator: the terminal authenticator, the web app in a browser, or any
// third-party app that speaks the device API. It holds an ECDSA P-256 private key; we keep the public
// half to verify its signed decisions.
type Device struct {
	ID      string
	Subject string
	Name    string
	// Kind describes the authenticator ("terminal", "web", or what a third-party app calls itself).
	Kind string
	// PublicKey is the device's public JWK (EC P-256).
	PublicKey json.RawMessage
	CreatedAt time.Time
	// RevokedAt is set when the user or an operator removes the device. Revoked devices stay stored so
	// that old receipts can still be verified.
	RevokedAt time.Time
}

// Active reports whether the device may still decide requests.
func (d Device) Active() bool { return d.RevokedAt.IsZero() }

// Enrollment is a one-time invitation for a user to enroll a device.
type Enrollment struct {
	// CodeHash is the SHA-256 of the enrollment code carried in the invitation URL.
	CodeHash  []byte
	Subject   string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt and DeviceID are set when the code is redeemed.
	UsedAt   time.Time
	DeviceID string
}

// Use marks the enrollment as redeemed by a device, once, before it expires.
func (e *Enrollment) Use(now time.Time, deviceID string) error {
	switch {
	case !e.UsedAt.IsZero():
		return ErrEnrollmentUsed
	case !now.Before(e.ExpiresAt):
		return ErrEnrollmentExpired
	}
	e.UsedAt = now
	e.DeviceID = deviceID
	return nil
}

// PushSubscription is a device's Web Push subscription (RFC 8030), as the browser's PushManager gave
// it. A device has at most one.
type PushSubscription struct {
	DeviceID string
	Subject  string
	Endpoint string
	// P256DH and Auth are the subscription's keys (base64url), used to encrypt payloads (RFC 8291).
	P256DH    string
	Auth      string
	CreatedAt time.Time
}

// Passkey is a WebAuthn credential a user registered for step-up user verification.
type Passkey struct {
	// ID is the credential ID, base64url.
	ID       string
	Subject  string
	DeviceID string
	Name     string
	// Credential is the verifier's record of the credential (public key, sign count, flags) as JSON.
	Credential json.RawMessage
	CreatedAt  time.Time
	LastUsedAt time.Time
}
