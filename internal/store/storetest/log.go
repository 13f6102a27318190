package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// appendEvents appends events in one transaction, in order.
func appendEvents(t *testing.T, s domain.Store, events ...domain.AuditEvent) {
	t.Helper()
	ok(t, "append audit events", s.InTx(t.Context(), func(tx domain.Store) error {
		for _, e := range events {
			if err := tx.AppendAudit(t.Context(), e); err != nil {
				return err
			}
		}
		return nil
	}))
}

// event is an audit event numbered n, one second after the previous one.
func event(n int, typ, subject, clientID, requestID string) domain.AuditEvent {
	return domain.AuditEvent{
		Time: at(time.Duration(n) * time.Second), Type: typ, Subject: subject, ClientID: clientID,
		RequestID: requestID, DeviceID: fmt.Sprintf("dev-%d", n),
		Detail: json.RawMessage(fmt.Sprintf(`{"n": %d, "ip":"192.0.2.1"}`, n)),
	}
}

func listAudit(t *testing.T, s domain.Store, f domain.AuditFilter) []domain.AuditEvent {
	t.Helper()
	got, err := s.ListAudit(t.Context(), f)
	ok(t, "ListAudit", err)
	return got
}

// detailsOf lists the Detail of events, which identify them across stores.
func detailsOf(events []domain.AuditEvent) []string {
	return idsOf(events, func(e domain.AuditEvent) string { return string(e.Detail) })
}

var auditTests = []test{
	{"Audit/AppendAndList", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		e1 := event(1, domain.AuditRequestCreated, alice, agent, "req-1")
		e2 := event(2, domain.AuditRequestApproved, alice, agent, "req-1")
		e3 := domain.AuditEvent{Time: at(3 * time.Second), Type: domain.AuditKeyRotated} // no detail
		for _, e := range []domain.AuditEvent{e1, e2, e3} {
			ok(t, "AppendAudit", s.AppendAudit(ctx, e))
		}
		got := listAudit(t, s, domain.AuditFilter{})
		if len(got) != 3 {
			t.Fatalf("ListAudit: got %d events, want 3", len(got))
		}
		if !(got[2].ID > 0 && got[1].ID > got[2].ID && got[0].ID > got[1].ID) {
			t.Errorf("audit IDs must be positive and increase in insertion order, newest first: got %d, %d, %d",
				got[0].ID, got[1].ID, got[2].ID)
		}
		e1.ID, e2.ID, e3.ID = got[2].ID, got[1].ID, got[0].ID
		same(t, "audit events, newest first", []domain.AuditEvent{e3, e2, e1}, got)
	}},
	{"Audit/Filters", func(t *testing.T, s domain.Store) {
		appendEvents(t, s,
			event(1, domain.AuditRequestCreated, alice, agent, "req-1"),
			event(2, domain.AuditRequestCreated, bob, agent2, "req-2"),
			event(3, domain.AuditRequestApproved, alice, agent, "req-1"),
			event(4, domain.AuditRequestDenied, bob, agent2, "req-2"),
			event(5, domain.AuditDeviceEnrolled, alice, "", ""),
		)
		n := func(ns ...int) []string {
			var out []string
			for _, i := range ns {
				out = append(out, fmt.Sprintf(`{"n": %d, "ip":"192.0.2.1"}`, i))
			}
			return out
		}
		for _, c := range []struct {
			name string
			f    domain.AuditFilter
			want []string
		}{
			{"subject", domain.AuditFilter{Subject: alice}, n(5, 3, 1)},
			{"client", domain.AuditFilter{ClientID: agent2}, n(4, 2)},
			{"request", domain.AuditFilter{RequestID: "req-1"}, n(3, 1)},
			{"type", domain.AuditFilter{Type: domain.AuditRequestCreated}, n(2, 1)},
			{"subject and type", domain.AuditFilter{Subject: bob, Type: domain.AuditRequestDenied}, n(4)},
			{"nothing matches", domain.AuditFilter{Subject: "nobody"}, nil},
		} {
			sameIDs(t, "ListAudit by "+c.name, c.want, detailsOf(listAudit(t, s, c.f)))
		}
	}},
	{"Audit/Limit", func(t *testing.T, s domain.Store) {
		var events []domain.AuditEvent
		for i := range 105 {
			events = append(events, event(i, domain.AuditRequestCreated, alice, agent, "req"))
		}
		appendEvents(t, s, events...)
		got := listAudit(t, s, domain.AuditFilter{})
		if len(got) != 100 {
			t.Errorf("ListAudit without a limit: got %d events, want the default 100", len(got))
		} else {
			sameIDs(t, "first and last of the default page", []string{string(events[104].Detail), string(events[5].Detail)},
				[]string{string(got[0].Detail), string(got[99].Detail)})
		}
		got = listAudit(t, s, domain.AuditFilter{Subject: alice, Limit: 2})
		sameIDs(t, "ListAudit with limit 2", []string{string(events[104].Detail), string(events[103].Detail)}, detailsOf(got))
	}},
	{"Audit/AfterID", func(t *testing.T, s domain.Store) {
		var events []domain.AuditEvent
		for i := range 10 {
			events = append(events, event(i, domain.AuditRequestCreated, alice, agent, "req"))
		}
		appendEvents(t, s, events...)
		all := listAudit(t, s, domain.AuditFilter{})
		if len(all) != 10 {
			t.Fatalf("ListAudit: got %d events, want 10", len(all))
		}
		third := all[7].ID // events are newest first: all[9] is the first
		want := detailsOf(all[:7])
		sameIDs(t, "ListAudit after the third event", want, detailsOf(listAudit(t, s, domain.AuditFilter{AfterID: third})))
		// With a limit, AfterID pages forward: the events right after AfterID, never skipping any.
		page := listAudit(t, s, domain.AuditFilter{AfterID: third, Limit: 3})
		sameIDs(t, "ListAudit after the third event, limit 3", detailsOf(all[4:7]), detailsOf(page))
		if len(page) == 3 {
			next := listAudit(t, s, domain.AuditFilter{AfterID: page[0].ID, Limit: 3})
			sameIDs(t, "the next page", detailsOf(all[1:4]), detailsOf(next))
		}
		sameIDs(t, "ListAudit after the last event", nil, detailsOf(listAudit(t, s, domain.AuditFilter{AfterID: all[0].ID})))
	}},
}

// enqueue stores messages in one transaction and returns their IDs.
func enqueue(t *testing.T, s domain.Store, ms ...domain.OutboxMessage) []int64 {
	t.Helper()
	var ids []int64
	ok(t, "enqueue outbox messages", s.InTx(t.Context(), func(tx domain.Store) error {
		ids = ids[:0]
		for _, m := range ms {
			id, err := tx.EnqueueOutbox(t.Context(), m)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}))
	return ids
}

func claimedIDs(ms []domain.OutboxMessage) []string { return idsOf(ms, outboxID) }

var outboxTests = []test{
	{"Outbox/EnqueueAndList", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		full := fullMessage()
		// Only a kind, and a status EnqueueOutbox must ignore: it enqueues pending messages.
		minimal := domain.OutboxMessage{Kind: "notify.webpush", Status: domain.OutboxDead}
		id1, err := s.EnqueueOutbox(ctx, full)
		ok(t, "EnqueueOutbox", err)
		id2, err := s.EnqueueOutbox(ctx, minimal)
		ok(t, "EnqueueOutbox", err)
		if id1 <= 0 || id2 <= id1 {
			t.Errorf("outbox IDs must be positive and increase: got %d then %d", id1, id2)
		}
		full.ID, full.Status = id1, domain.OutboxPending
		minimal.ID, minimal.Status = id2, domain.OutboxPending
		got, err := s.ListOutbox(ctx, "", 0)
		ok(t, "ListOutbox", err)
		same(t, "outbox, newest first", []domain.OutboxMessage{minimal, full}, got)
	}},
	{"Outbox/ClaimDueAndUnleased", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		now := at(time.Hour)
		due := outboxMessage("due", "r1", now.Add(-time.Minute))
		dueNow := outboxMessage("due-now", "r2", now)
		immediate := outboxMessage("no-next-attempt", "r3", time.Time{})
		later := outboxMessage("later", "r4", now.Add(time.Minute))
		ids := enqueue(t, s, due, dueNow, immediate, later)
		for i, status := range []domain.OutboxStatus{domain.OutboxDelivered, domain.OutboxDead} {
			done := enqueue(t, s, outboxMessage(string(status), fmt.Sprint("done-", i), now.Add(-time.Hour)))
			_, err := s.UpdateOutbox(ctx, done[0], func(m *domain.OutboxMessage) error {
				m.Status = status
				return nil
			})
			ok(t, "UpdateOutbox", err)
		}

		lease := now.Add(30 * time.Second)
		got, err := s.ClaimOutbox(ctx, now, lease, 10)
		ok(t, "ClaimOutbox", err)
		dueIDs := []string{fmt.Sprint(ids[0]), fmt.Sprint(ids[1]), fmt.Sprint(ids[2])}
		sameSet(t, "claimed: due, pending and unleased", dueIDs, claimedIDs(got))
		for _, m := range got {
			want := map[int64]domain.OutboxMessage{ids[0]: due, ids[1]: dueNow, ids[2]: immediate}[m.ID]
			want.ID, want.Status, want.LeaseUntil, want.Attempts = m.ID, domain.OutboxPending, lease, 1
			same(t, "claimed message", want, m)
		}

		got, err = s.ClaimOutbox(ctx, now, lease, 10)
		ok(t, "ClaimOutbox", err)
		sameSet(t, "claimed again while leased", nil, claimedIDs(got))
		got, err = s.ClaimOutbox(ctx, lease.Add(-time.Microsecond), lease.Add(time.Minute), 10)
		ok(t, "ClaimOutbox", err)
		sameSet(t, "claimed just before the lease ends", nil, claimedIDs(got))

		// The lease is over at lease: the messages may be claimed again, with the later one now due.
		got, err = s.ClaimOutbox(ctx, now.Add(time.Minute), now.Add(2*time.Minute), 10)
		ok(t, "ClaimOutbox", err)
		sameSet(t, "claimed after the lease ended", append(dueIDs, fmt.Sprint(ids[3])), claimedIDs(got))
		for _, m := range got {
			// Refused claims (leased messages) count no attempt.
			want := map[int64]int{ids[0]: 2, ids[1]: 2, ids[2]: 2, ids[3]: 1}[m.ID]
			if m.Attempts != want {
				t.Errorf("message %d claimed again: Attempts %d, want %d", m.ID, m.Attempts, want)
			}
		}
	}},
	{"Outbox/ClaimCountsAttempts", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		now := at(time.Hour)
		fresh := outboxMessage("ping", "r1", now)
		retried := fullMessage() // Attempts 2, leased until before now
		retried.LeaseUntil, retried.NextAttemptAt = now.Add(-time.Second), now.Add(-time.Minute)
		ids := enqueue(t, s, fresh, retried)
		attempts := func(what string, want map[int64]int) {
			t.Helper()
			all, err := s.ListOutbox(ctx, "", 0)
			ok(t, "ListOutbox", err)
			for _, m := range all {
				if m.Attempts != want[m.ID] {
					t.Errorf("%s: message %d has Attempts %d, want %d", what, m.ID, m.Attempts, want[m.ID])
				}
			}
		}

		got, err := s.ClaimOutbox(ctx, now, now.Add(time.Minute), 10)
		ok(t, "ClaimOutbox", err)
		sameIDs(t, "claimed, oldest due first", []string{fmt.Sprint(ids[1]), fmt.Sprint(ids[0])}, claimedIDs(got))
		if len(got) == 2 {
			retried.ID, retried.Status, retried.Attempts, retried.LeaseUntil = ids[1], domain.OutboxPending, 3, now.Add(time.Minute)
			same(t, "claimed message with earlier attempts", retried, got[0])
			fresh.ID, fresh.Status, fresh.Attempts, fresh.LeaseUntil = ids[0], domain.OutboxPending, 1, now.Add(time.Minute)
			same(t, "claimed new message", fresh, got[1])
		}
		attempts("after the first claim", map[int64]int{ids[0]: 1, ids[1]: 3})

		got, err = s.ClaimOutbox(ctx, now.Add(time.Second), now.Add(2*time.Minute), 10)
		ok(t, "ClaimOutbox", err)
		sameIDs(t, "claimed while leased", nil, claimedIDs(got))
		attempts("after a claim that took nothing", map[int64]int{ids[0]: 1, ids[1]: 3})

		// The worker crashed: nothing updated the messages, the lease ran out, the next claim is a
		// new attempt.
		got, err = s.ClaimOutbox(ctx, now.Add(time.Minute), now.Add(2*time.Minute), 1)
		ok(t, "ClaimOutbox", err)
		sameIDs(t, "claimed after the lease ended, limit 1", []string{fmt.Sprint(ids[1])}, claimedIDs(got))
		got, err = s.ClaimOutbox(ctx, now.Add(time.Minute), now.Add(2*time.Minute), 1)
		ok(t, "ClaimOutbox", err)
		sameIDs(t, "claimed next", []string{fmt.Sprint(ids[0])}, claimedIDs(got))
		if len(got) == 1 && got[0].Attempts != 2 {
			t.Errorf("message claimed twice: Attempts %d, want 2", got[0].Attempts)
		}
		attempts("after the second claims", map[int64]int{ids[0]: 2, ids[1]: 4})

		// What the worker records after the attempt keeps the count.
		m, err := s.UpdateOutbox(ctx, ids[0], func(m *domain.OutboxMessage) error {
			m.LastError, m.LeaseUntil, m.NextAttemptAt = "timeout", time.Time{}, now.Add(time.Hour)
			return nil
		})
		ok(t, "UpdateOutbox", err)
		if m.Attempts != 2 {
			t.Errorf("UpdateOutbox after two claims: Attempts %d, want 2", m.Attempts)
		}
	}},
	{"Outbox/ClaimLimit", func(t *testing.T, s domain.Store) {
		now := at(time.Hour)
		var ms []domain.OutboxMessage
		for i := range 5 {
			ms = append(ms, outboxMessage("ping", fmt.Sprint("r", i), now.Add(-time.Duration(i)*time.Minute)))
		}
		enqueue(t, s, ms...)
		seen := map[int64]bool{}
		for _, limit := range []int{2, 2, 2} {
			got, err := s.ClaimOutbox(t.Context(), now, now.Add(time.Minute), limit)
			ok(t, "ClaimOutbox", err)
			if len(got) > limit {
				t.Errorf("ClaimOutbox with limit %d returned %d messages", limit, len(got))
			}
			for _, m := range got {
				if seen[m.ID] {
					t.Errorf("message %d claimed twice while leased", m.ID)
				}
				seen[m.ID] = true
			}
		}
		if len(seen) != 5 {
			t.Errorf("three claims of 2 claimed %d of 5 messages", len(seen))
		}
	}},
	{"UpdateOutbox/Deliver", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		now := at(time.Hour)
		ids := enqueue(t, s, outboxMessage("ping", "r1", now))
		claimed, err := s.ClaimOutbox(ctx, now, now.Add(time.Minute), 1)
		ok(t, "ClaimOutbox", err)
		if len(claimed) != 1 {
			t.Fatalf("ClaimOutbox: got %d messages, want 1", len(claimed))
		}
		if claimed[0].Attempts != 1 {
			t.Errorf("claimed message: Attempts %d, want 1", claimed[0].Attempts)
		}
		// The claim counted the attempt: delivery only records the outcome.
		got, err := s.UpdateOutbox(ctx, ids[0], func(m *domain.OutboxMessage) error {
			m.Status, m.DeliveredAt, m.LeaseUntil = domain.OutboxDelivered, now.Add(time.Second), time.Time{}
			return nil
		})
		ok(t, "UpdateOutbox", err)
		want := claimed[0]
		want.Status, want.DeliveredAt, want.LeaseUntil = domain.OutboxDelivered, now.Add(time.Second), time.Time{}
		same(t, "returned message", want, got)
		list, err := s.ListOutbox(ctx, domain.OutboxDelivered, 0)
		ok(t, "ListOutbox", err)
		same(t, "delivered messages", []domain.OutboxMessage{want}, list)
		again, err := s.ClaimOutbox(ctx, now.Add(time.Hour), now.Add(2*time.Hour), 10)
		ok(t, "ClaimOutbox", err)
		sameSet(t, "claimed after delivery", nil, claimedIDs(again))
	}},
	{"UpdateOutbox/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		m := outboxMessage("ping", "r1", at(0))
		ids := enqueue(t, s, m)
		_, err := s.UpdateOutbox(ctx, ids[0], func(m *domain.OutboxMessage) error {
			m.Status, m.Attempts, m.LastError = domain.OutboxDead, 9, "gave up"
			return errBoom
		})
		isErr(t, "UpdateOutbox whose function fails", err, errBoom)
		m.ID, m.Status = ids[0], domain.OutboxPending
		got, err := s.ListOutbox(ctx, "", 0)
		ok(t, "ListOutbox", err)
		same(t, "outbox after a failed update", []domain.OutboxMessage{m}, got)

		called := false
		_, err = s.UpdateOutbox(ctx, ids[0]+1000, func(*domain.OutboxMessage) error {
			called = true
			return nil
		})
		isErr(t, "UpdateOutbox of a missing message", err, domain.ErrNotFound)
		if called {
			t.Error("UpdateOutbox called fn for a missing message")
		}
	}},
	{"ListOutbox/StatusAndLimit", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		var ms []domain.OutboxMessage
		for i := range 105 {
			ms = append(ms, outboxMessage("ping", fmt.Sprint("r", i), at(0)))
		}
		ids := enqueue(t, s, ms...)
		_, err := s.UpdateOutbox(ctx, ids[3], func(m *domain.OutboxMessage) error {
			m.Status = domain.OutboxDead
			return nil
		})
		ok(t, "UpdateOutbox", err)
		all, err := s.ListOutbox(ctx, "", 0)
		ok(t, "ListOutbox", err)
		if len(all) != 100 || all[0].ID != ids[104] {
			t.Errorf("ListOutbox without a limit: got %d messages, want the newest 100", len(all))
		}
		pending, err := s.ListOutbox(ctx, domain.OutboxPending, 2)
		ok(t, "ListOutbox", err)
		sameIDs(t, "ListOutbox pending, limit 2", []string{fmt.Sprint(ids[104]), fmt.Sprint(ids[103])}, claimedIDs(pending))
		dead, err := s.ListOutbox(ctx, domain.OutboxDead, 0)
		ok(t, "ListOutbox", err)
		sameIDs(t, "ListOutbox dead", []string{fmt.Sprint(ids[3])}, claimedIDs(dead))
	}},
}
