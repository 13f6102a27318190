package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// fixture is what writeEverything writes: one thing of every aggregate, and changes to things that
// existed before the transaction.
type fixture struct {
	client     domain.Client
	user       domain.User
	device     domain.Device
	enrollment domain.Enrollment
	request    domain.Request
	token      domain.Token
	key        domain.SigningKey
	event      domain.AuditEvent
	message    domain.OutboxMessage
	push       domain.PushSubscription
	passkey    domain.Passkey
	nonce      string
}

func newFixture() fixture {
	return fixture{
		client:     fullClient("tx-client"),
		user:       fullUser("tx-user", "tx-user@example.com"),
		device:     fullDevice("tx-device", "tx-user", at(0)),
		enrollment: domain.Enrollment{CodeHash: sha("tx-code"), Subject: "tx-user", CreatedAt: at(0), ExpiresAt: at(time.Hour)},
		request:    pendingRequest("tx-request", "tx-user", "tx-client", at(0)),
		token:      refreshToken("tx-token", "tx-family", at(0)),
		key:        domain.SigningKey{ID: "tx-key", Algorithm: "ES256", Use: "sig", Status: domain.KeyNext, PrivateKey: sha("k"), CreatedAt: at(0)},
		event:      event(1, domain.AuditRequestCreated, "tx-user", "tx-client", "tx-request"),
		message:    outboxMessage("ciba.ping", "tx-request", at(0)),
		push:       fullPushSubscription("tx-device", "tx-user", at(0)),
		passkey:    usedPasskey("tx-passkey", "tx-user", at(0)),
		nonce:      "tx-nonce",
	}
}

// seedExisting stores what writeEverything changes: alice's device with its push subscription, her
// pending request and passkey, and a refresh token family.
func seedExisting(t *testing.T, s domain.Store) {
	t.Helper()
	ctx := t.Context()
	seedUsers(t, s)
	ok(t, "CreateDevice", s.CreateDevice(ctx, fullDevice("existing-device", alice, at(0))))
	ok(t, "CreateRequest", s.CreateRequest(ctx, pendingRequest("existing-request", alice, agent, at(0))))
	ok(t, "CreateToken", s.CreateToken(ctx, refreshToken("existing-token", "existing-family", at(0))))
	ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, domain.Enrollment{
		CodeHash: sha("existing-code"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour),
	}))
	ok(t, "PutPushSubscription", s.PutPushSubscription(ctx, existingPush()))
	ok(t, "CreatePasskey", s.CreatePasskey(ctx, existingPasskey()))
}

func existingPush() domain.PushSubscription {
	return fullPushSubscription("existing-device", alice, at(0))
}

func existingPasskey() domain.Passkey {
	p := usedPasskey("existing-passkey", alice, at(0))
	p.LastUsedAt = time.Time{}
	return p
}

// writeEverything calls every write method of tx, creating f and changing what seedExisting stored.
func writeEverything(ctx context.Context, tx domain.Store, f fixture) error {
	steps := []func() error{
		func() error { return tx.PutClient(ctx, f.client) },
		func() error { return tx.PutUser(ctx, f.user) },
		func() error { return tx.CreateDevice(ctx, f.device) },
		func() error { return tx.CreateEnrollment(ctx, f.enrollment) },
		func() error { return tx.CreateRequest(ctx, f.request) },
		func() error { return tx.CreateToken(ctx, f.token) },
		func() error { return tx.PutKey(ctx, f.key) },
		func() error { return tx.AppendAudit(ctx, f.event) },
		func() error { _, err := tx.EnqueueOutbox(ctx, f.message); return err },
		func() error { return tx.PutPushSubscription(ctx, f.push) },
		func() error { return tx.CreatePasskey(ctx, f.passkey) },
		func() error { return tx.UseNonce(ctx, f.nonce, time.Now().Add(time.Hour)) },
		func() error { return tx.DeletePushSubscription(ctx, "existing-device") },
		func() error {
			_, err := tx.UpdatePasskey(ctx, "existing-passkey", func(p *domain.Passkey) error {
				p.LastUsedAt = at(time.Minute)
				return nil
			})
			return err
		},
		func() error { return tx.RevokeDevice(ctx, "existing-device", at(time.Hour)) },
		func() error { return tx.RevokeTokenFamily(ctx, "existing-family", at(time.Hour)) },
		func() error {
			_, err := tx.UpdateRequest(ctx, "existing-request", func(r *domain.Request) error {
				return r.Approve(at(time.Minute), receipt("existing-device", domain.DecisionApprove, at(time.Minute)))
			})
			return err
		},
		func() error {
			_, err := tx.UpdateEnrollment(ctx, sha("existing-code"), func(e *domain.Enrollment) error {
				return e.Use(at(time.Minute), "existing-device")
			})
			return err
		},
		func() error {
			_, err := tx.UpdateToken(ctx, "existing-token", func(tok *domain.Token) error {
				tok.UsedAt = at(time.Minute)
				return nil
			})
			return err
		},
		func() error { return tx.DeleteClient(ctx, "tx-client") },
		func() error { return tx.PutClient(ctx, f.client) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// checkNothingWritten fails the test if anything writeEverything does is visible.
func checkNothingWritten(t *testing.T, s domain.Store, f fixture) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetClient(ctx, f.client.ID)
	isErr(t, "client written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.GetUser(ctx, f.user.Subject)
	isErr(t, "user written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, f.user.Email)
	isErr(t, "user email written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.GetDevice(ctx, f.device.ID)
	isErr(t, "device written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.UpdateEnrollment(ctx, f.enrollment.CodeHash, func(*domain.Enrollment) error { return nil })
	isErr(t, "enrollment written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.GetRequest(ctx, f.request.ID)
	isErr(t, "request written in a rolled back transaction", err, domain.ErrNotFound)
	_, err = s.GetRequestByAuthReqID(ctx, f.request.AuthReqIDHash)
	isErr(t, "request written in a rolled back transaction, by hash", err, domain.ErrNotFound)
	_, err = s.GetToken(ctx, f.token.ID)
	isErr(t, "token written in a rolled back transaction", err, domain.ErrNotFound)
	keys, err := s.ListKeys(ctx)
	ok(t, "ListKeys", err)
	sameIDs(t, "keys written in a rolled back transaction", nil, idsOf(keys, keyID))
	events, err := s.ListAudit(ctx, domain.AuditFilter{})
	ok(t, "ListAudit", err)
	sameIDs(t, "audit events written in a rolled back transaction", nil, idsOf(events, auditType))
	msgs, err := s.ListOutbox(ctx, "", 0)
	ok(t, "ListOutbox", err)
	sameIDs(t, "outbox messages written in a rolled back transaction", nil, idsOf(msgs, outboxID))
	subs, err := s.ListPushSubscriptions(ctx, f.push.Subject)
	ok(t, "ListPushSubscriptions", err)
	sameIDs(t, "push subscriptions written in a rolled back transaction", nil, idsOf(subs, pushDevice))
	passkeys, err := s.ListPasskeys(ctx, f.passkey.Subject)
	ok(t, "ListPasskeys", err)
	sameIDs(t, "passkeys written in a rolled back transaction", nil, idsOf(passkeys, passkeyID))
	ok(t, "UseNonce of a nonce used in a rolled back transaction", s.UseNonce(ctx, f.nonce, time.Now().Add(time.Hour)))

	d, err := s.GetDevice(ctx, "existing-device")
	ok(t, "GetDevice", err)
	if !d.Active() {
		t.Error("device revoked in a rolled back transaction is revoked")
	}
	r := mustGetRequest(t, s, "existing-request")
	if r.Status != domain.StatusPending || r.Receipt != nil {
		t.Errorf("request approved in a rolled back transaction: status %s, receipt %v", r.Status, r.Receipt)
	}
	e, err := peekEnrollment(ctx, s, sha("existing-code"))
	ok(t, "read enrollment", err)
	if !e.UsedAt.IsZero() {
		t.Error("enrollment used in a rolled back transaction is used")
	}
	tok := mustGetToken(t, s, "existing-token")
	if !tok.RevokedAt.IsZero() || !tok.UsedAt.IsZero() {
		t.Error("token revoked and used in a rolled back transaction is changed")
	}
	subs, err = s.ListPushSubscriptions(ctx, alice)
	ok(t, "ListPushSubscriptions", err)
	same(t, "push subscription deleted in a rolled back transaction", []domain.PushSubscription{existingPush()}, subs)
	passkeys, err = s.ListPasskeys(ctx, alice)
	ok(t, "ListPasskeys", err)
	same(t, "passkey used in a rolled back transaction", []domain.Passkey{existingPasskey()}, passkeys)
}

// checkEverythingWritten fails the test unless everything writeEverything does is visible.
func checkEverythingWritten(t *testing.T, s domain.Store, f fixture) {
	t.Helper()
	ctx := t.Context()
	c, err := s.GetClient(ctx, f.client.ID)
	ok(t, "GetClient", err)
	same(t, "committed client", f.client, c)
	u, err := s.GetUserByEmail(ctx, f.user.Email)
	ok(t, "GetUserByEmail", err)
	same(t, "committed user", f.user, u)
	d, err := s.GetDevice(ctx, f.device.ID)
	ok(t, "GetDevice", err)
	same(t, "committed device", f.device, d)
	e, err := peekEnrollment(ctx, s, f.enrollment.CodeHash)
	ok(t, "read enrollment", err)
	same(t, "committed enrollment", f.enrollment, e)
	same(t, "committed request", f.request, mustGetRequest(t, s, f.request.ID))
	same(t, "committed token", f.token, mustGetToken(t, s, f.token.ID))
	keys, err := s.ListKeys(ctx)
	ok(t, "ListKeys", err)
	same(t, "committed keys", []domain.SigningKey{f.key}, keys)
	events, err := s.ListAudit(ctx, domain.AuditFilter{})
	ok(t, "ListAudit", err)
	if len(events) == 1 {
		f.event.ID = events[0].ID
	}
	same(t, "committed audit events", []domain.AuditEvent{f.event}, events)
	msgs, err := s.ListOutbox(ctx, "", 0)
	ok(t, "ListOutbox", err)
	if len(msgs) == 1 {
		f.message.ID, f.message.Status = msgs[0].ID, domain.OutboxPending
	}
	same(t, "committed outbox messages", []domain.OutboxMessage{f.message}, msgs)
	subs, err := s.ListPushSubscriptions(ctx, f.push.Subject)
	ok(t, "ListPushSubscriptions", err)
	same(t, "committed push subscriptions", []domain.PushSubscription{f.push}, subs)
	passkeys, err := s.ListPasskeys(ctx, f.passkey.Subject)
	ok(t, "ListPasskeys", err)
	same(t, "committed passkeys", []domain.Passkey{f.passkey}, passkeys)
	isErr(t, "UseNonce of a nonce used in a committed transaction", s.UseNonce(ctx, f.nonce, time.Now().Add(time.Hour)), domain.ErrAlreadyExists)

	dev, err := s.GetDevice(ctx, "existing-device")
	ok(t, "GetDevice", err)
	if dev.Active() {
		t.Error("device revoked in a committed transaction is active")
	}
	if r := mustGetRequest(t, s, "existing-request"); r.Status != domain.StatusApproved {
		t.Errorf("request approved in a committed transaction: status %s", r.Status)
	}
	en, err := peekEnrollment(ctx, s, sha("existing-code"))
	ok(t, "read enrollment", err)
	if en.DeviceID != "existing-device" {
		t.Error("enrollment used in a committed transaction is unused")
	}
	if tok := mustGetToken(t, s, "existing-token"); tok.RevokedAt.IsZero() || tok.UsedAt.IsZero() {
		t.Error("token revoked and used in a committed transaction is unchanged")
	}
	subs, err = s.ListPushSubscriptions(ctx, alice)
	ok(t, "ListPushSubscriptions", err)
	sameIDs(t, "push subscriptions after a delete in a committed transaction", nil, idsOf(subs, pushDevice))
	passkeys, err = s.ListPasskeys(ctx, alice)
	ok(t, "ListPasskeys", err)
	used := existingPasskey()
	used.LastUsedAt = at(time.Minute)
	same(t, "passkey used in a committed transaction", []domain.Passkey{used}, passkeys)
}

var txTests = []test{
	{"InTx/Commit", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		ok(t, "InTx", s.InTx(t.Context(), func(tx domain.Store) error { return writeEverything(t.Context(), tx, f) }))
		checkEverythingWritten(t, s, f)
	}},
	{"InTx/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		err := s.InTx(t.Context(), func(tx domain.Store) error {
			if err := writeEverything(t.Context(), tx, f); err != nil {
				t.Errorf("writes inside the transaction: %v", err)
			}
			return errBoom
		})
		isErr(t, "InTx whose function fails", err, errBoom)
		checkNothingWritten(t, s, f)
	}},
	{"InTx/StoreErrorRollsBack", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		err := s.InTx(t.Context(), func(tx domain.Store) error {
			if err := writeEverything(t.Context(), tx, f); err != nil {
				return err
			}
			return tx.CreateRequest(t.Context(), f.request) // a duplicate
		})
		isErr(t, "InTx ending with a duplicate insert", err, domain.ErrAlreadyExists)
		checkNothingWritten(t, s, f)
	}},
	{"InTx/ReadsOwnWrites", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		ok(t, "InTx", s.InTx(t.Context(), func(tx domain.Store) error {
			ctx := t.Context()
			if err := writeEverything(ctx, tx, f); err != nil {
				return err
			}
			if _, err := tx.GetUserByEmail(ctx, f.user.Email); err != nil {
				t.Errorf("GetUserByEmail inside the transaction: %v", err)
			}
			if _, err := tx.GetRequestByAuthReqID(ctx, f.request.AuthReqIDHash); err != nil {
				t.Errorf("GetRequestByAuthReqID inside the transaction: %v", err)
			}
			if r, err := tx.GetRequest(ctx, "existing-request"); err != nil || r.Status != domain.StatusApproved {
				t.Errorf("GetRequest inside the transaction: status %s, error %v; want the approval", r.Status, err)
			}
			if rs, err := tx.ListRequests(ctx, domain.RequestFilter{Subject: f.user.Subject}); err != nil || len(rs) != 1 {
				t.Errorf("ListRequests inside the transaction: %d requests, error %v", len(rs), err)
			}
			if pending, _, err := tx.CountRequests(ctx, f.user.Subject, at(0), at(0)); err != nil || pending != 1 {
				t.Errorf("CountRequests inside the transaction: %d pending, error %v", pending, err)
			}
			if n, err := tx.CountActiveDevices(ctx, alice); err != nil || n != 0 {
				t.Errorf("CountActiveDevices inside the transaction: %d, error %v; want the revocation", n, err)
			}
			if tok, err := tx.GetTokenByHash(ctx, f.token.Hash); err != nil || tok.ID != f.token.ID {
				t.Errorf("GetTokenByHash inside the transaction: %v", err)
			}
			if events, err := tx.ListAudit(ctx, domain.AuditFilter{}); err != nil || len(events) != 1 {
				t.Errorf("ListAudit inside the transaction: %d events, error %v", len(events), err)
			}
			if claimed, err := tx.ClaimOutbox(ctx, at(time.Hour), at(2*time.Hour), 10); err != nil || len(claimed) != 1 || claimed[0].Attempts != 1 {
				t.Errorf("ClaimOutbox inside the transaction: %+v, error %v; want 1 message, 1 attempt", claimed, err)
			}
			if subs, err := tx.ListPushSubscriptions(ctx, f.push.Subject); err != nil || len(subs) != 1 {
				t.Errorf("ListPushSubscriptions inside the transaction: %d subscriptions, error %v", len(subs), err)
			}
			if subs, err := tx.ListPushSubscriptions(ctx, alice); err != nil || len(subs) != 0 {
				t.Errorf("ListPushSubscriptions inside the transaction: %d subscriptions, error %v; want the delete", len(subs), err)
			}
			if ps, err := tx.ListPasskeys(ctx, alice); err != nil || len(ps) != 1 || ps[0].LastUsedAt.IsZero() {
				t.Errorf("ListPasskeys inside the transaction: %+v, error %v; want the update", ps, err)
			}
			if claimed, err := tx.ClaimOutbox(ctx, at(90*time.Minute), at(3*time.Hour), 10); err != nil || len(claimed) != 0 {
				t.Errorf("ClaimOutbox inside the transaction, while leased by the transaction: %d messages, error %v", len(claimed), err)
			}
			if err := tx.UseNonce(ctx, f.nonce, time.Now().Add(time.Hour)); !errorsIs(err, domain.ErrAlreadyExists) {
				t.Errorf("UseNonce of a nonce used earlier in the transaction: %v, want ErrAlreadyExists", err)
			}
			return nil
		}))
	}},
	{"InTx/ClaimRollsBack", func(t *testing.T, s domain.Store) {
		// A claim in a transaction that fails leases nothing and counts no attempt.
		ctx := t.Context()
		m := outboxMessage("ciba.ping", "r1", at(0))
		ids := enqueue(t, s, m)
		err := s.InTx(ctx, func(tx domain.Store) error {
			claimed, err := tx.ClaimOutbox(ctx, at(time.Hour), at(2*time.Hour), 10)
			if err != nil || len(claimed) != 1 {
				t.Errorf("ClaimOutbox inside the transaction: %d messages, error %v", len(claimed), err)
			}
			return errBoom
		})
		isErr(t, "InTx whose function fails", err, errBoom)
		m.ID, m.Status = ids[0], domain.OutboxPending
		all, err := s.ListOutbox(ctx, "", 0)
		ok(t, "ListOutbox", err)
		same(t, "outbox after a claim in a rolled back transaction", []domain.OutboxMessage{m}, all)
		claimed, err := s.ClaimOutbox(ctx, at(time.Hour), at(2*time.Hour), 10)
		ok(t, "ClaimOutbox", err)
		if len(claimed) != 1 || claimed[0].Attempts != 1 {
			t.Errorf("ClaimOutbox after the rolled back claim: %+v, want 1 message with 1 attempt", claimed)
		}
	}},
	{"InTx/UpdateErrorInside", func(t *testing.T, s domain.Store) {
		// A failed update inside a transaction saves nothing, and the transaction may go on.
		seedExisting(t, s)
		before := mustGetRequest(t, s, "existing-request")
		ok(t, "InTx", s.InTx(t.Context(), func(tx domain.Store) error {
			_, err := tx.UpdateRequest(t.Context(), "existing-request", func(r *domain.Request) error {
				r.BindingMessage = "changed"
				return errBoom
			})
			isErr(t, "UpdateRequest inside InTx whose function fails", err, errBoom)
			return tx.AppendAudit(t.Context(), event(1, domain.AuditRequestCreated, alice, agent, "x"))
		}))
		same(t, "request after a failed update inside a committed transaction", before, mustGetRequest(t, s, "existing-request"))
		events, err := s.ListAudit(t.Context(), domain.AuditFilter{})
		ok(t, "ListAudit", err)
		if len(events) != 1 {
			t.Errorf("the transaction's other write: got %d audit events, want 1", len(events))
		}
	}},
	{"InTx/NestedJoins", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		ok(t, "InTx", s.InTx(t.Context(), func(tx domain.Store) error {
			if err := tx.InTx(t.Context(), func(inner domain.Store) error {
				return writeEverything(t.Context(), inner, f)
			}); err != nil {
				return err
			}
			// The outer function sees the inner one's writes.
			_, err := tx.GetRequest(t.Context(), f.request.ID)
			return err
		}))
		checkEverythingWritten(t, s, f)
	}},
	{"InTx/NestedRollsBackWithOuter", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		err := s.InTx(t.Context(), func(tx domain.Store) error {
			if err := tx.InTx(t.Context(), func(inner domain.Store) error {
				return writeEverything(t.Context(), inner, f)
			}); err != nil {
				t.Errorf("inner InTx: %v", err)
			}
			return errBoom
		})
		isErr(t, "outer InTx whose function fails after the inner one succeeded", err, errBoom)
		checkNothingWritten(t, s, f)
	}},
	{"InTx/NestedErrorPropagates", func(t *testing.T, s domain.Store) {
		seedExisting(t, s)
		f := newFixture()
		err := s.InTx(t.Context(), func(tx domain.Store) error {
			return tx.InTx(t.Context(), func(inner domain.Store) error {
				if err := writeEverything(t.Context(), inner, f); err != nil {
					t.Errorf("writes inside the nested transaction: %v", err)
				}
				return errBoom
			})
		})
		isErr(t, "InTx whose nested InTx fails", err, errBoom)
		checkNothingWritten(t, s, f)
	}},
	{"Ping", func(t *testing.T, s domain.Store) {
		ok(t, "Ping", s.Ping(t.Context()))
	}},
}
