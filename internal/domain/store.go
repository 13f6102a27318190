package domain

import (
	"context"
	"time"
)

// Clients stores registered clients.
type Clients interface {
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	// PutClient inserts or replaces a client by ID.
	PutClient(ctx context.Context, c Client) error
	DeleteClient(ctx context.Context, id string) error
}

// Users stores the people who approve requests.
type Users interface {
	GetUser(ctx context.Context, subject string) (User, error)
	// GetUserByEmail matches the email case-insensitively.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// PutUser inserts or replaces a user by subject. Emails are unique (case-insensitively):
	// a clash with another user is ErrAlreadyExists.
	PutUser(ctx context.Context, u User) error
}

// Devices stores enrolled authenticators and enrollment invitations.
type Devices interface {
	// CreateDevice inserts a device; an existing ID is ErrAlreadyExists.
	CreateDevice(ctx context.Context, d Device) error
	GetDevice(ctx context.Context, id string) (Device, error)
	// ListDevices returns the user's devices, revoked ones included, oldest first.
	ListDevices(ctx context.Context, subject string) ([]Device, error)
	// CountActiveDevices counts the user's devices that are not revoked.
	CountActiveDevices(ctx context.Context, subject string) (int, error)
	// RevokeDevice sets RevokedAt; revoking twice keeps the first time.
	RevokeDevice(ctx context.Context, id string, at time.Time) error

	CreateEnrollment(ctx context.Context, e Enrollment) error
	// UpdateEnrollment loads the enrollment by code hash, applies fn, and saves it, atomically.
	UpdateEnrollment(ctx context.Context, codeHash []byte, fn func(*Enrollment) error) (Enrollment, error)
}

// Requests stores backchannel requests.
type Requests interface {
	// CreateRequest inserts a request; an existing ID or auth_req_id hash is ErrAlreadyExists.
	CreateRequest(ctx context.Context, r Request) error
	GetRequest(ctx context.Context, id string) (Request, error)
	GetRequestByAuthReqID(ctx context.Context, authReqIDHash []byte) (Request, error)
	// UpdateRequest loads the request, applies fn (a state transition), and saves the result,
	// atomically: two concurrent updates of one request never both succeed from the same state.
	// When fn returns an error nothing is saved and that error is returned.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) error) (Request, error)
	// ListRequests returns requests matching the filter, newest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]Request, error)
	// CountRequests returns how many of the user's requests are pending and unexpired at now, and
	// how many the user received since the given time (for abuse limits).
	CountRequests(ctx context.Context, subject string, now, since time.Time) (pending, recent int, err error)
	// ListExpiredPending returns up to limit pending requests whose ExpiresAt is not after now.
	ListExpiredPending(ctx context.Context, now time.Time, limit int) ([]Request, error)
}

// RequestFilter selects requests; zero fields match everything.
type RequestFilter struct {
	Subject  string
	ClientID string
	Status   RequestStatus
	// UnexpiredAt, when set, keeps only requests whose ExpiresAt is after it.
	UnexpiredAt time.Time
	// Limit caps the result; zero means a backend default of 100.
	Limit int
}

// Tokens stores the records of issued tokens and one-time values.
type Tokens interface {
	// CreateToken inserts a token record; an existing ID or hash is ErrAlreadyExists.
	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	GetTokenByHash(ctx context.Context, hash []byte) (Token, error)
	// UpdateToken loads the token by ID, applies fn, and saves it, atomically.
	UpdateToken(ctx context.Context, id string, fn func(*Token) error) (Token, error)
	// RevokeTokenFamily revokes every unrevoked token of a refresh-token family.
	RevokeTokenFamily(ctx context.Context, familyID string, at time.Time) error
	// UseNonce records a one-time value (a JWT's jti) until expiresAt; a value seen before and not yet
	// expired is ErrAlreadyExists.
	UseNonce(ctx context.Context, key string, expiresAt time.Time) error
	// PurgeExpired deletes token records and nonces that expired before the given time.
	PurgeExpired(ctx context.Context, before time.Time) error
}

// Keys stores the server's private keys.
type Keys interface {
	// ListKeys returns every stored key, oldest first.
	ListKeys(ctx context.Context) ([]SigningKey, error)
	// PutKey inserts or replaces a key by ID.
	PutKey(ctx context.Context, k SigningKey) error
}

// Audit is the append-only audit log.
type Audit interface {
	AppendAudit(ctx context.Context, e AuditEvent) error
	// ListAudit returns matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// Outbox stores messages to deliver outside the process.
type Outbox interface {
	// EnqueueOutbox inserts a pending message and returns its ID.
	EnqueueOutbox(ctx context.Context, m OutboxMessage) (int64, error)
	// ClaimOutbox leases up to limit pending messages that are due at now and not leased, until
	// leaseUntil, increments their Attempts (so each delivery attempt is recorded before it is made,
	// and a message claimed again after a crash is a new attempt), and returns them. Two concurrent
	// claims never return the same message.
	ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]OutboxMessage, error)
	// UpdateOutbox loads a message, applies fn, and saves it, atomically.
	UpdateOutbox(ctx context.Context, id int64, fn func(*OutboxMessage) error) (OutboxMessage, error)
	// ListOutbox returns messages in a status (all when empty), newest first, up to limit (0: 100).
	ListOutbox(ctx context.Context, status OutboxStatus, limit int) ([]OutboxMessage, error)
}

// Notifications stores where to reach people: Web Push subscriptions of devices.
type Notifications interface {
	// PutPushSubscription inserts or replaces the device's subscription.
	PutPushSubscription(ctx context.Context, s PushSubscription) error
	// ListPushSubscriptions returns the user's subscriptions, oldest first.
	ListPushSubscriptions(ctx context.Context, subject string) ([]PushSubscription, error)
	// DeletePushSubscription removes the device's subscription; a missing one is not an error.
	DeletePushSubscription(ctx context.Context, deviceID string) error
}

// Passkeys stores users' WebAuthn credentials.
type Passkeys interface {
	// CreatePasskey inserts a passkey; an existing ID is ErrAlreadyExists.
	CreatePasskey(ctx context.Context, p Passkey) error
	// ListPasskeys returns the user's passkeys, oldest first.
	ListPasskeys(ctx context.Context, subject string) ([]Passkey, error)
	// UpdatePasskey loads the passkey by ID, applies fn, and saves it, atomically.
	UpdatePasskey(ctx context.Context, id string, fn func(*Passkey) error) (Passkey, error)
}

// Store is everything the use cases persist.
type Store interface {
	Clients
	Users
	Devices
	Requests
	Tokens
	Keys
	Audit
	Outbox
	Notifications
	Passkeys

	// InTx runs fn with a Store whose methods all act in one transaction, committed when fn returns
	// nil and rolled back otherwise. fn must only call the store and compute: backends may run it on a
	// shared writer (SQLite batches concurrent transactions into one commit), so it must not block.
	// Calling InTx on the Store given to fn runs the inner function in the same transaction.
	InTx(ctx context.Context, fn func(tx Store) error) error
	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	Close() error
}
