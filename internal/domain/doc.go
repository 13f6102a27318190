// Package domain holds Countersign's entities (clients, users, devices, backchannel requests, tokens,
// signing keys, audit events, outbox messages), the state machine of a backchannel request, and the
// store interfaces that every storage backend implements.
//
// The package does no I/O. Use cases live in internal/authz; storage backends live under internal/store
// and prove themselves against the shared conformance suite in internal/store/storetest.
package domain

import (
	"errors"
	"time"
)

// Storage errors. Backends map their driver errors to these so that use cases never see SQL.
var (
	// ErrNotFound means no row matched the key.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means an insert collided with an existing key (or a one-time value was reused).
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means a state transition was not allowed from the current state.
	ErrConflict = errors.New("conflict")
)

// Clock tells the time. Use cases take one so that tests control expiry without sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock, in UTC.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
