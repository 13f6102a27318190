package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

var requestTests = []test{
	{"Request/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		pending := pendingRequest("req-pending", alice, agent, at(0))
		redeemed := decidedRequest("req-redeemed", alice, agent, at(time.Second))
		// Only what is required: no lists, no authorization_details, no receipt.
		minimal := domain.Request{
			ID: "req-minimal", AuthReqIDHash: sha("minimal"), ClientID: agent, Subject: bob,
			Status: domain.StatusPending, AuthorizationDetails: json.RawMessage{}, Scope: []string{},
		}
		for _, r := range []domain.Request{pending, redeemed, minimal} {
			ok(t, "CreateRequest "+r.ID, s.CreateRequest(ctx, r))
			got, err := s.GetRequest(ctx, r.ID)
			ok(t, "GetRequest", err)
			same(t, "request "+r.ID, r, got)
			got, err = s.GetRequestByAuthReqID(ctx, r.AuthReqIDHash)
			ok(t, "GetRequestByAuthReqID", err)
			same(t, "request "+r.ID+" found by auth_req_id", r, got)
		}
	}},
	{"Request/ReceiptFlags", func(t *testing.T, s domain.Store) {
		// Each receipt flag on its own, so that a backend that mixes them up fails.
		ctx := t.Context()
		seedUsers(t, s)
		var rs []domain.Request
		for i, f := range []struct{ reported, verified bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			r := decidedRequest(fmt.Sprint("req-", i), alice, agent, at(time.Duration(i)*time.Second))
			r.Receipt.Reported, r.Receipt.UserVerified = f.reported, f.verified
			if f.reported {
				r.Status, r.Receipt.Decision, r.RedeemedAt = domain.StatusDenied, domain.DecisionDeny, time.Time{}
			}
			rs = append(rs, r)
		}
		// And the request-level flags unset while the receipt's are set.
		rs[3].RequireUserVerification, rs[3].VerificationCode, rs[3].RemindedAt = false, "", time.Time{}
		createRequests(t, s, rs...)
		for _, r := range rs {
			same(t, "request "+r.ID, r, mustGetRequest(t, s, r.ID))
			got, err := s.GetRequestByAuthReqID(ctx, r.AuthReqIDHash)
			ok(t, "GetRequestByAuthReqID", err)
			same(t, "request "+r.ID+" found by auth_req_id", r, got)
		}
		got, err := s.ListRequests(ctx, domain.RequestFilter{Subject: alice})
		ok(t, "ListRequests", err)
		if len(got) == len(rs) {
			for i, r := range got {
				same(t, "listed request "+r.ID, rs[len(rs)-1-i], r)
			}
		} else {
			t.Errorf("ListRequests: got %d requests, want %d", len(got), len(rs))
		}
	}},
	{"Request/CreateDuplicate", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		ok(t, "CreateRequest", s.CreateRequest(ctx, r))

		sameID := pendingRequest("req", bob, agent2, at(time.Hour))
		isErr(t, "CreateRequest with an existing ID", s.CreateRequest(ctx, sameID), domain.ErrAlreadyExists)
		sameHash := pendingRequest("req-2", bob, agent2, at(time.Hour))
		sameHash.AuthReqIDHash = r.AuthReqIDHash
		isErr(t, "CreateRequest with an existing auth_req_id hash", s.CreateRequest(ctx, sameHash), domain.ErrAlreadyExists)

		same(t, "request after duplicate creates", r, mustGetRequest(t, s, "req"))
		_, err := s.GetRequest(ctx, "req-2")
		isErr(t, "GetRequest of the request whose create failed", err, domain.ErrNotFound)
	}},
	{"Request/GetMissing", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		_, err := s.GetRequest(ctx, "nothing")
		isErr(t, "GetRequest of a missing request", err, domain.ErrNotFound)
		_, err = s.GetRequestByAuthReqID(ctx, sha("nothing"))
		isErr(t, "GetRequestByAuthReqID of a missing hash", err, domain.ErrNotFound)
	}},
	{"Request/ReturnsCopies", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		want := pendingRequest("req", alice, agent, at(0))
		ok(t, "CreateRequest", s.CreateRequest(ctx, r))
		r.Scope[0], r.AuthorizationDetails[0] = "changed", '{'
		got := mustGetRequest(t, s, "req")
		got.Scope[0], got.AuthReqIDHash[0] = "changed", got.AuthReqIDHash[0]^0xff
		same(t, "request after the caller changed its copies", want, mustGetRequest(t, s, "req"))
	}},
}

// update applies fn to the stored request and returns UpdateRequest's results.
func update(t *testing.T, s domain.Store, id string, fn func(*domain.Request) error) (domain.Request, error) {
	t.Helper()
	return s.UpdateRequest(t.Context(), id, fn)
}

// checkTransition runs a transition that must succeed and checks that the returned and the stored
// request both equal want.
func checkTransition(t *testing.T, s domain.Store, what string, want domain.Request, fn func(*domain.Request) error) {
	t.Helper()
	got, err := update(t, s, want.ID, fn)
	ok(t, what, err)
	same(t, what+": returned request", want, got)
	same(t, what+": stored request", want, mustGetRequest(t, s, want.ID))
}

var updateRequestTests = []test{
	{"UpdateRequest/Approve", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		rc := receipt("dev-1", domain.DecisionApprove, at(time.Minute))
		want := r
		want.Status, want.DecidedAt, want.Receipt = domain.StatusApproved, at(time.Minute), &rc
		checkTransition(t, s, "Approve", want, func(r *domain.Request) error { return r.Approve(at(time.Minute), rc) })
	}},
	{"UpdateRequest/Deny", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		rc := receipt("dev-1", domain.DecisionDeny, at(time.Minute))
		want := r
		want.Status, want.DecidedAt, want.Receipt = domain.StatusDenied, at(time.Minute), &rc
		checkTransition(t, s, "Deny", want, func(r *domain.Request) error { return r.Deny(at(time.Minute), rc) })
	}},
	{"UpdateRequest/Expire", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		_, err := update(t, s, "req", func(r *domain.Request) error { return r.Expire(r.ExpiresAt.Add(-time.Microsecond)) })
		isErr(t, "Expire before the expiry", err, domain.ErrConflict)
		same(t, "request after an early Expire", r, mustGetRequest(t, s, "req"))
		want := r
		want.Status, want.DecidedAt = domain.StatusExpired, r.ExpiresAt
		checkTransition(t, s, "Expire", want, func(r *domain.Request) error { return r.Expire(r.ExpiresAt) })
	}},
	{"UpdateRequest/Cancel", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		_, err := update(t, s, "req", func(r *domain.Request) error { return r.Cancel(at(time.Second), agent2) })
		isErr(t, "Cancel by another client", err, domain.ErrWrongClient)
		want := r
		want.Status, want.DecidedAt = domain.StatusCancelled, at(time.Second)
		checkTransition(t, s, "Cancel", want, func(r *domain.Request) error { return r.Cancel(at(time.Second), agent) })
	}},
	{"UpdateRequest/Redeem", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		rc := receipt("dev-1", domain.DecisionApprove, at(time.Minute))
		if err := r.Approve(at(time.Minute), rc); err != nil {
			t.Fatal(err)
		}
		createRequests(t, s, r)
		_, err := update(t, s, "req", func(r *domain.Request) error { return r.Redeem(at(2*time.Minute), agent2) })
		isErr(t, "Redeem by another client", err, domain.ErrWrongClient)
		want := r
		want.RedeemedAt = at(2 * time.Minute)
		checkTransition(t, s, "Redeem", want, func(r *domain.Request) error { return r.Redeem(at(2*time.Minute), agent) })
		_, err = update(t, s, "req", func(r *domain.Request) error { return r.Redeem(at(3*time.Minute), agent) })
		isErr(t, "second Redeem", err, domain.ErrAlreadyRedeemed)
		same(t, "request after a second Redeem", want, mustGetRequest(t, s, "req"))
	}},
	{"UpdateRequest/DecidesOnce", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		approval := receipt("dev-1", domain.DecisionApprove, at(time.Minute))
		_, err := update(t, s, "req", func(r *domain.Request) error { return r.Approve(at(time.Minute), approval) })
		ok(t, "Approve", err)
		want := mustGetRequest(t, s, "req")
		denial := receipt("dev-2", domain.DecisionDeny, at(2*time.Minute))
		_, err = update(t, s, "req", func(r *domain.Request) error { return r.Deny(at(2*time.Minute), denial) })
		isErr(t, "Deny after Approve", err, domain.ErrNotPending)
		_, err = update(t, s, "req", func(r *domain.Request) error { return r.Cancel(at(2*time.Minute), agent) })
		isErr(t, "Cancel after Approve", err, domain.ErrNotPending)
		same(t, "request after refused transitions", want, mustGetRequest(t, s, "req"))
	}},
	{"UpdateRequest/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		_, err := update(t, s, "req", func(r *domain.Request) error {
			rc := receipt("dev-1", domain.DecisionApprove, at(time.Minute))
			if err := r.Approve(at(time.Minute), rc); err != nil {
				return err
			}
			r.BindingMessage, r.Scope, r.Interval = "changed", nil, time.Hour
			r.VerificationCode, r.RequireUserVerification, r.RemindedAt = "99", false, at(time.Minute)
			r.Receipt.Reported, r.Receipt.UserVerified = true, true
			return errBoom
		})
		isErr(t, "UpdateRequest whose function fails", err, errBoom)
		same(t, "request after a failed update", r, mustGetRequest(t, s, "req"))
	}},
	{"UpdateRequest/Remind", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		want := r
		want.RemindedAt = at(time.Minute)
		checkTransition(t, s, "Remind", want, func(r *domain.Request) error {
			r.RemindedAt = at(time.Minute)
			return nil
		})
	}},
	{"UpdateRequest/ReportAndVerify", func(t *testing.T, s domain.Store) {
		// The flags set with the decision, and a report added to a denial afterwards.
		seedUsers(t, s)
		approved, denied := pendingRequest("approved", alice, agent, at(0)), pendingRequest("denied", alice, agent, at(0))
		createRequests(t, s, approved, denied)
		rc := receipt("dev-1", domain.DecisionApprove, at(time.Minute))
		rc.UserVerified = true
		approved.Status, approved.DecidedAt, approved.Receipt = domain.StatusApproved, at(time.Minute), &rc
		checkTransition(t, s, "Approve with user verification", approved, func(r *domain.Request) error {
			return r.Approve(at(time.Minute), rc)
		})
		denial := receipt("dev-1", domain.DecisionDeny, at(time.Minute))
		_, err := update(t, s, "denied", func(r *domain.Request) error { return r.Deny(at(time.Minute), denial) })
		ok(t, "Deny", err)
		reported := denial
		reported.Reported = true
		denied.Status, denied.DecidedAt, denied.Receipt = domain.StatusDenied, at(time.Minute), &reported
		checkTransition(t, s, "Report", denied, func(r *domain.Request) error {
			r.Receipt.Reported = true
			return nil
		})
	}},
	{"UpdateRequest/Missing", func(t *testing.T, s domain.Store) {
		called := false
		_, err := update(t, s, "nothing", func(*domain.Request) error {
			called = true
			return nil
		})
		isErr(t, "UpdateRequest of a missing request", err, domain.ErrNotFound)
		if called {
			t.Error("UpdateRequest called fn for a missing request")
		}
	}},
	{"UpdateRequest/Interval", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		createRequests(t, s, r)
		for range 2 {
			_, err := update(t, s, "req", func(r *domain.Request) error {
				r.Interval += 5 * time.Second
				return nil
			})
			ok(t, "UpdateRequest", err)
		}
		if got := mustGetRequest(t, s, "req").Interval; got != 15*time.Second {
			t.Errorf("Interval after two increases of 5s: got %v, want 15s", got)
		}
	}},
}

var listRequestTests = []test{
	{"ListRequests/Filters", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		mk := func(id, subject, client string, created, expires time.Duration, status domain.RequestStatus) domain.Request {
			r := pendingRequest(id, subject, client, at(created))
			r.ExpiresAt, r.Status = at(expires), status
			return r
		}
		createRequests(t, s,
			mk("r1", alice, agent, 1*time.Minute, 10*time.Minute, domain.StatusPending),
			mk("r2", alice, agent2, 2*time.Minute, 10*time.Minute, domain.StatusApproved),
			mk("r3", alice, agent2, 3*time.Minute, 4*time.Minute, domain.StatusPending),
			mk("r4", bob, agent, 4*time.Minute, 9*time.Minute, domain.StatusPending),
			mk("r5", bob, agent, 5*time.Minute, 5*time.Minute, domain.StatusDenied),
		)
		for _, c := range []struct {
			name string
			f    domain.RequestFilter
			want []string
		}{
			{"no filter", domain.RequestFilter{}, []string{"r5", "r4", "r3", "r2", "r1"}},
			{"subject", domain.RequestFilter{Subject: alice}, []string{"r3", "r2", "r1"}},
			{"client", domain.RequestFilter{ClientID: agent}, []string{"r5", "r4", "r1"}},
			{"status", domain.RequestFilter{Status: domain.StatusPending}, []string{"r4", "r3", "r1"}},
			{"unexpired", domain.RequestFilter{UnexpiredAt: at(5 * time.Minute)}, []string{"r4", "r2", "r1"}},
			{"subject and status", domain.RequestFilter{Subject: alice, Status: domain.StatusPending}, []string{"r3", "r1"}},
			{"everything", domain.RequestFilter{Subject: alice, ClientID: agent, Status: domain.StatusPending, UnexpiredAt: at(9 * time.Minute)}, []string{"r1"}},
			{"nothing matches", domain.RequestFilter{Subject: "nobody"}, nil},
		} {
			got, err := s.ListRequests(t.Context(), c.f)
			ok(t, "ListRequests "+c.name, err)
			sameIDs(t, "ListRequests "+c.name+", newest first", c.want, idsOf(got, requestID))
		}
		got, err := s.ListRequests(t.Context(), domain.RequestFilter{Subject: bob, Status: domain.StatusPending})
		ok(t, "ListRequests", err)
		if len(got) == 1 {
			same(t, "listed request", mk("r4", bob, agent, 4*time.Minute, 9*time.Minute, domain.StatusPending), got[0])
		}
	}},
	{"ListRequests/Limit", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		var rs []domain.Request
		for i := range 105 {
			rs = append(rs, pendingRequest(fmt.Sprintf("r%03d", i), alice, agent, at(time.Duration(i)*time.Second)))
		}
		createRequests(t, s, rs...)
		got, err := s.ListRequests(t.Context(), domain.RequestFilter{})
		ok(t, "ListRequests", err)
		if len(got) != 100 {
			t.Errorf("ListRequests without a limit: got %d requests, want the default 100", len(got))
		} else {
			sameIDs(t, "first and last of the default page", []string{"r104", "r005"}, []string{got[0].ID, got[99].ID})
		}
		got, err = s.ListRequests(t.Context(), domain.RequestFilter{Subject: alice, Limit: 3})
		ok(t, "ListRequests", err)
		sameIDs(t, "ListRequests with limit 3", []string{"r104", "r103", "r102"}, idsOf(got, requestID))
	}},
	{"CountRequests", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		now, since := at(time.Hour), at(30*time.Minute)
		mk := func(id, subject string, created, expires time.Time, status domain.RequestStatus) domain.Request {
			r := pendingRequest(id, subject, agent, created)
			r.ExpiresAt, r.Status = expires, status
			return r
		}
		createRequests(t, s,
			mk("pending-live", alice, now.Add(-time.Minute), now.Add(time.Minute), domain.StatusPending),       // pending, recent
			mk("pending-old-live", alice, at(0), now.Add(time.Microsecond), domain.StatusPending),              // pending, not recent
			mk("pending-expiring-now", alice, since, now, domain.StatusPending),                                // recent (since is inclusive), expired
			mk("pending-expired", alice, at(0), now.Add(-time.Minute), domain.StatusPending),                   // neither
			mk("approved", alice, now.Add(-time.Second), now.Add(time.Minute), domain.StatusApproved),          // recent
			mk("before-since", alice, since.Add(-time.Microsecond), now.Add(time.Minute), domain.StatusDenied), // neither
			mk("bobs", bob, now, now.Add(time.Minute), domain.StatusPending),                                   // another user
		)
		pending, recent, err := s.CountRequests(t.Context(), alice, now, since)
		ok(t, "CountRequests", err)
		if pending != 2 || recent != 3 {
			t.Errorf("CountRequests: got pending=%d recent=%d, want pending=2 recent=3", pending, recent)
		}
		pending, recent, err = s.CountRequests(t.Context(), "nobody", now, since)
		ok(t, "CountRequests", err)
		if pending != 0 || recent != 0 {
			t.Errorf("CountRequests of a user without requests: got %d, %d", pending, recent)
		}
	}},
	{"ListExpiredPending", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		now := at(time.Hour)
		mk := func(id string, expires time.Time, status domain.RequestStatus) domain.Request {
			r := pendingRequest(id, alice, agent, at(0))
			r.ExpiresAt, r.Status = expires, status
			return r
		}
		createRequests(t, s,
			mk("expired-long-ago", at(time.Minute), domain.StatusPending),
			mk("expired-just-now", now, domain.StatusPending),
			mk("expired-a-second-ago", now.Add(-time.Second), domain.StatusPending),
			mk("live", now.Add(time.Microsecond), domain.StatusPending),
			mk("approved-expired", at(time.Minute), domain.StatusApproved),
			mk("expired-marked", at(time.Minute), domain.StatusExpired),
		)
		got, err := s.ListExpiredPending(t.Context(), now, 0)
		ok(t, "ListExpiredPending", err)
		sameSet(t, "expired pending requests", []string{"expired-long-ago", "expired-just-now", "expired-a-second-ago"}, idsOf(got, requestID))
		got, err = s.ListExpiredPending(t.Context(), now, 2)
		ok(t, "ListExpiredPending with limit 2", err)
		if len(got) != 2 {
			t.Errorf("ListExpiredPending with limit 2: got %d requests", len(got))
		}
		for _, r := range got {
			if r.Status != domain.StatusPending || r.ExpiresAt.After(now) {
				t.Errorf("ListExpiredPending returned %s (status %s, expires %s)", r.ID, r.Status, fmtTime(r.ExpiresAt))
			}
		}
	}},
}
