// Package storetest is the conformance suite that every domain.Store backend must pass. A backend's
// test file is a few lines:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, newStore) }
//	func TestConcurrency(t *testing.T) { storetest.RunConcurrent(t, newStore) }
//
// where newStore returns a fresh, empty store and registers its Close with t.Cleanup.
//
// # What the suite requires beyond the interface comments
//
// The interfaces in internal/domain say what each method does; the suite pins down what they leave
// open, so that every backend behaves the same:
//
//   - Times come back in UTC and equal to what was stored once both are truncated to the microsecond
//     (the suite stores times with nanoseconds and a non-UTC zone). The zero time comes back zero.
//   - Durations (Request.Interval, Client.AccessTokenTTL) round-trip exactly; the suite uses whole
//     milliseconds.
//   - JSON values (json.RawMessage) round-trip byte for byte, whitespace and key order included, so a
//     backend must not store them in a normalizing type such as PostgreSQL's jsonb. An empty value
//     (nil or zero-length) comes back with length zero.
//   - Byte slices and string lists come back equal; nil and empty are interchangeable.
//   - Emails are unique and looked up case-insensitively, with Unicode case folding (not just ASCII).
//     Users without an email never clash, and GetUserByEmail("") finds no one.
//   - Deleting, revoking or updating something that does not exist is domain.ErrNotFound, but for
//     DeletePushSubscription (see below).
//   - Devices, enrollments, requests and passkeys are created for users that exist, and push
//     subscriptions for devices that exist, under the device's own Subject; backends may enforce it
//     (ErrNotFound).
//   - "Expired" means ExpiresAt is not after now, as in domain.Request.IsExpired: CountRequests counts
//     ExpiresAt > now as unexpired, ListExpiredPending returns ExpiresAt <= now, and CountRequests'
//     since is inclusive (CreatedAt >= since).
//   - UseNonce has no "now": backends judge a nonce's expiry by the wall clock. The suite only uses
//     expiries an hour or more away from time.Now(), so it never sleeps or races the clock.
//   - RevokeTokenFamily("") revokes nothing: tokens outside a family are not a family.
//   - ListAudit with AfterID returns the Limit events right after AfterID (newest first), so that a
//     reader paging forward never skips events; without AfterID it returns the newest Limit events.
//   - EnqueueOutbox stores the message as pending whatever its Status; a message is due when its
//     NextAttemptAt is zero or not after now, and unleased when its LeaseUntil is zero or not after now.
//     ClaimOutbox adds one to the Attempts of every message it claims, and returns them so counted.
//   - A device has at most one push subscription: PutPushSubscription replaces the device's previous
//     one, whatever its fields. ListPushSubscriptions and ListPasskeys are ordered by CreatedAt,
//     oldest first. Deleting a subscription that does not exist is not an error.
//   - A Receipt's Reported and UserVerified come back as stored, whatever the Decision.
//   - Update functions that fail save nothing, inside InTx as well as outside.
//   - InTx on the tx Store joins the transaction: its writes commit or roll back with the outer one.
package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/domain"
)

// test is one conformance check, run against a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}

// Run runs the conformance suite. newStore must return a new, empty store each time it is called;
// each sub-test gets its own and runs in parallel with the others.
func Run(t *testing.T, newStore func(t *testing.T) domain.Store) {
	var all []test
	for _, group := range [][]test{
		fixtureTests, clientTests, userTests, deviceTests, enrollmentTests, requestTests, updateRequestTests,
		listRequestTests, tokenTests, keyTests, auditTests, outboxTests, pushTests, passkeyTests, txTests,
	} {
		all = append(all, group...)
	}
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s domain.Store
			if !strings.HasPrefix(tc.name, "Fixtures/") {
				s = newStore(t)
			}
			tc.fn(t, s)
		})
	}
}

// RunConcurrent runs the race tests: many goroutines doing the same thing at once to one store, where
// exactly one may succeed (approve, redeem, enroll, use a nonce) or none may be handed the same thing
// (outbox claims). Run it with -race.
func RunConcurrent(t *testing.T, newStore func(t *testing.T) domain.Store) {
	for _, tc := range concurrentTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// errBoom is the error test functions return to make a transaction or an update fail.
var errBoom = errors.New("storetest: boom")
