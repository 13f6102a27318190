package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// racers is how many goroutines race in each concurrency test.
const racers = 32

// race runs fn in n goroutines released at the same moment and returns their errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// exactlyOne checks that exactly one call succeeded and every other failed with loser, and returns
// the index of the winner (or -1).
func exactlyOne(t *testing.T, what string, errs []error, loser error) int {
	t.Helper()
	winner := -1
	var wins int
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
			wins++
		case !errors.Is(err, loser):
			t.Errorf("%s #%d: got error %v, want nil or %v", what, i, err, loser)
		}
	}
	if wins != 1 {
		t.Errorf("%s: %d of %d calls succeeded, want exactly 1", what, wins, len(errs))
		return -1
	}
	return winner
}

var concurrentTests = []test{
	{"Concurrent/ApproveOnce", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		createRequests(t, s, pendingRequest("req", alice, agent, at(0)))
		errs := race(racers, func(i int) error {
			_, err := s.UpdateRequest(t.Context(), "req", func(r *domain.Request) error {
				return r.Approve(at(time.Minute), receipt(fmt.Sprint("dev-", i), domain.DecisionApprove, at(time.Minute)))
			})
			return err
		})
		if w := exactlyOne(t, "Approve", errs, domain.ErrNotPending); w >= 0 {
			r := mustGetRequest(t, s, "req")
			if r.Status != domain.StatusApproved || r.Receipt == nil || r.Receipt.DeviceID != fmt.Sprint("dev-", w) {
				t.Errorf("stored request: status %s, receipt %+v; want the winner's (dev-%d)", r.Status, r.Receipt, w)
			}
		}
	}},
	{"Concurrent/DecideOnce", func(t *testing.T, s domain.Store) {
		// Approvals, denials and cancellations racing: one transition wins, whichever it is.
		seedUsers(t, s)
		createRequests(t, s, pendingRequest("req", alice, agent, at(0)))
		want := make([]domain.RequestStatus, racers)
		errs := race(racers, func(i int) error {
			_, err := s.UpdateRequest(t.Context(), "req", func(r *domain.Request) error {
				now := at(time.Minute)
				switch i % 3 {
				case 0:
					want[i] = domain.StatusApproved
					return r.Approve(now, receipt(fmt.Sprint("dev-", i), domain.DecisionApprove, now))
				case 1:
					want[i] = domain.StatusDenied
					return r.Deny(now, receipt(fmt.Sprint("dev-", i), domain.DecisionDeny, now))
				default:
					want[i] = domain.StatusCancelled
					return r.Cancel(now, agent)
				}
			})
			return err
		})
		if w := exactlyOne(t, "decide", errs, domain.ErrNotPending); w >= 0 {
			if got := mustGetRequest(t, s, "req").Status; got != want[w] {
				t.Errorf("stored status %s, want the winner's %s", got, want[w])
			}
		}
	}},
	{"Concurrent/RedeemOnce", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		r := pendingRequest("req", alice, agent, at(0))
		if err := r.Approve(at(time.Minute), receipt("dev", domain.DecisionApprove, at(time.Minute))); err != nil {
			t.Fatal(err)
		}
		createRequests(t, s, r)
		errs := race(racers, func(i int) error {
			_, err := s.UpdateRequest(t.Context(), "req", func(r *domain.Request) error {
				return r.Redeem(at(2*time.Minute+time.Duration(i)*time.Millisecond), agent)
			})
			return err
		})
		if w := exactlyOne(t, "Redeem", errs, domain.ErrAlreadyRedeemed); w >= 0 {
			if got, want := mustGetRequest(t, s, "req").RedeemedAt, at(2*time.Minute+time.Duration(w)*time.Millisecond); !got.Equal(want.Truncate(Precision)) {
				t.Errorf("stored RedeemedAt %s, want the winner's %s", fmtTime(got), fmtTime(want))
			}
		}
	}},
	{"Concurrent/EnrollOnce", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		code := sha("code")
		ok(t, "CreateEnrollment", s.CreateEnrollment(t.Context(), domain.Enrollment{
			CodeHash: code, Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour),
		}))
		errs := race(racers, func(i int) error {
			_, err := s.UpdateEnrollment(t.Context(), code, func(e *domain.Enrollment) error {
				return e.Use(at(time.Minute), fmt.Sprint("dev-", i))
			})
			return err
		})
		if w := exactlyOne(t, "Use", errs, domain.ErrEnrollmentUsed); w >= 0 {
			e, err := peekEnrollment(t.Context(), s, code)
			ok(t, "read enrollment", err)
			if e.DeviceID != fmt.Sprint("dev-", w) {
				t.Errorf("stored DeviceID %q, want the winner's dev-%d", e.DeviceID, w)
			}
		}
	}},
	{"Concurrent/NonceOnce", func(t *testing.T, s domain.Store) {
		expires := time.Now().Add(time.Hour)
		errs := race(racers, func(int) error { return s.UseNonce(t.Context(), "jti", expires) })
		exactlyOne(t, "UseNonce", errs, domain.ErrAlreadyExists)
	}},
	{"Concurrent/CreateOnce", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		errs := race(racers, func(i int) error {
			r := pendingRequest("req", alice, agent, at(time.Duration(i)*time.Second))
			return s.CreateRequest(t.Context(), r)
		})
		exactlyOne(t, "CreateRequest", errs, domain.ErrAlreadyExists)
	}},
	{"Concurrent/ClaimOutboxNeverTwice", func(t *testing.T, s domain.Store) {
		const messages = 200
		now := at(time.Hour)
		var ms []domain.OutboxMessage
		for i := range messages {
			ms = append(ms, outboxMessage("ping", fmt.Sprint("r", i), now.Add(-time.Duration(i)*time.Millisecond)))
		}
		enqueue(t, s, ms...)
		var (
			mu      sync.Mutex
			claimed = map[int64]int{}
			total   int
		)
		errs := race(16, func(int) error {
			for {
				got, err := s.ClaimOutbox(t.Context(), now, now.Add(time.Minute), 7)
				if err != nil || len(got) == 0 {
					return err
				}
				mu.Lock()
				for _, m := range got {
					claimed[m.ID]++
					if m.Attempts != 1 {
						t.Errorf("message %d claimed once: Attempts %d, want 1", m.ID, m.Attempts)
					}
				}
				total += len(got)
				more := total <= messages // a store that hands messages out again must not loop forever
				mu.Unlock()
				if !more {
					return nil
				}
			}
		})
		for i, err := range errs {
			ok(t, fmt.Sprint("ClaimOutbox #", i), err)
		}
		if len(claimed) != messages {
			t.Errorf("claimed %d distinct messages, want %d", len(claimed), messages)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("message %d claimed %d times", id, n)
			}
		}
	}},
	{"Concurrent/PushSubscriptionOnePerDevice", func(t *testing.T, s domain.Store) {
		// Racing puts for one device (a browser renewing its subscription in two tabs) leave one.
		seedDevices(t, s, fullDevice("dev", alice, at(0)))
		errs := race(racers, func(i int) error {
			return s.PutPushSubscription(t.Context(), fullPushSubscription("dev", alice, at(time.Duration(i)*time.Second)))
		})
		for i, err := range errs {
			ok(t, fmt.Sprint("PutPushSubscription #", i), err)
		}
		subs := listPush(t, s, alice)
		if len(subs) != 1 {
			t.Errorf("subscriptions of one device after racing puts: got %d, want 1", len(subs))
		}
	}},
	{"Concurrent/UpdatePasskeyNoLostUpdate", func(t *testing.T, s domain.Store) {
		// Every assertion bumps the sign count; none may be lost.
		seedUsers(t, s)
		ok(t, "CreatePasskey", s.CreatePasskey(t.Context(), domain.Passkey{
			ID: "cred", Subject: alice, Credential: json.RawMessage(`{"sign_count":0}`), CreatedAt: at(0),
		}))
		errs := race(racers, func(int) error {
			_, err := s.UpdatePasskey(t.Context(), "cred", func(p *domain.Passkey) error {
				var c struct {
					SignCount int `json:"sign_count"`
				}
				if err := json.Unmarshal(p.Credential, &c); err != nil {
					return err
				}
				c.SignCount++
				b, err := json.Marshal(c)
				p.Credential = b
				return err
			})
			return err
		})
		for i, err := range errs {
			ok(t, fmt.Sprint("UpdatePasskey #", i), err)
		}
		ps := listPasskeys(t, s, alice)
		if want := fmt.Sprintf(`{"sign_count":%d}`, racers); len(ps) != 1 || string(ps[0].Credential) != want {
			t.Errorf("passkey after %d racing updates: %+v, want credential %s", racers, ps, want)
		}
	}},
	{"Concurrent/IndependentTransactions", func(t *testing.T, s domain.Store) {
		seedUsers(t, s)
		const n = 64
		errs := race(n, func(i int) error {
			return s.InTx(t.Context(), func(tx domain.Store) error {
				id := fmt.Sprint("req-", i)
				if err := tx.CreateRequest(t.Context(), pendingRequest(id, alice, agent, at(time.Duration(i)*time.Second))); err != nil {
					return err
				}
				if err := tx.AppendAudit(t.Context(), event(i, domain.AuditRequestCreated, alice, agent, id)); err != nil {
					return err
				}
				_, err := tx.EnqueueOutbox(t.Context(), outboxMessage("notify", id, at(0)))
				return err
			})
		})
		for i, err := range errs {
			ok(t, fmt.Sprint("InTx #", i), err)
		}
		rs, err := s.ListRequests(t.Context(), domain.RequestFilter{Limit: 1000})
		ok(t, "ListRequests", err)
		events, err := s.ListAudit(t.Context(), domain.AuditFilter{Limit: 1000})
		ok(t, "ListAudit", err)
		msgs, err := s.ListOutbox(t.Context(), "", 1000)
		ok(t, "ListOutbox", err)
		if len(rs) != n || len(events) != n || len(msgs) != n {
			t.Errorf("after %d transactions: %d requests, %d audit events, %d outbox messages", n, len(rs), len(events), len(msgs))
		}
	}},
	{"Concurrent/ReadsDuringWrites", func(t *testing.T, s domain.Store) {
		// Readers never see a request half-updated: a request read while updates race is always in
		// one of the states the updates leave it in.
		seedUsers(t, s)
		createRequests(t, s, pendingRequest("req", alice, agent, at(0)))
		errs := race(racers, func(i int) error {
			if i%2 == 0 {
				_, err := s.UpdateRequest(t.Context(), "req", func(r *domain.Request) error {
					r.Interval += time.Second
					r.BindingMessage = fmt.Sprint("interval ", r.Interval)
					return nil
				})
				return err
			}
			r, err := s.GetRequestByAuthReqID(t.Context(), sha("auth-req-id-req"))
			if err == nil && r.Interval != 5*time.Second && r.BindingMessage != fmt.Sprint("interval ", r.Interval) {
				return fmt.Errorf("torn read: interval %v with binding message %q", r.Interval, r.BindingMessage)
			}
			return err
		})
		for i, err := range errs {
			ok(t, fmt.Sprint("goroutine ", i), err)
		}
		if got := mustGetRequest(t, s, "req").Interval; got != 5*time.Second+racers/2*time.Second {
			t.Errorf("Interval after %d increases: got %v", racers/2, got)
		}
	}},
}
