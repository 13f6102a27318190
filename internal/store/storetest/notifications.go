package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// seedDevices stores alice, bob and devices of theirs (a subscription needs its device).
func seedDevices(t *testing.T, s domain.Store, devices ...domain.Device) {
	t.Helper()
	seedUsers(t, s)
	ok(t, "create devices", s.InTx(t.Context(), func(tx domain.Store) error {
		for _, d := range devices {
			if err := tx.CreateDevice(t.Context(), d); err != nil {
				return err
			}
		}
		return nil
	}))
}

func listPush(t *testing.T, s domain.Store, subject string) []domain.PushSubscription {
	t.Helper()
	got, err := s.ListPushSubscriptions(t.Context(), subject)
	ok(t, "ListPushSubscriptions "+subject, err)
	return got
}

var pushTests = []test{
	{"Push/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedDevices(t, s, fullDevice("dev-full", alice, at(0)), fullDevice("dev-minimal", bob, at(0)))
		full := fullPushSubscription("dev-full", alice, at(time.Minute))
		minimal := domain.PushSubscription{DeviceID: "dev-minimal", Subject: bob}
		for _, p := range []domain.PushSubscription{full, minimal} {
			ok(t, "PutPushSubscription "+p.DeviceID, s.PutPushSubscription(ctx, p))
			same(t, "subscriptions of "+p.Subject, []domain.PushSubscription{p}, listPush(t, s, p.Subject))
		}
	}},
	{"Push/ListOldestFirst", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedDevices(t, s,
			fullDevice("a-third", alice, at(0)), fullDevice("b-first", alice, at(0)),
			fullDevice("c-second", alice, at(0)), fullDevice("bobs", bob, at(0)),
			fullDevice("no-subscription", alice, at(0)))
		third := fullPushSubscription("a-third", alice, at(3*time.Minute))
		first := fullPushSubscription("b-first", alice, at(time.Minute))
		second := fullPushSubscription("c-second", alice, at(2*time.Minute))
		for _, p := range []domain.PushSubscription{second, third, fullPushSubscription("bobs", bob, at(0)), first} {
			ok(t, "PutPushSubscription", s.PutPushSubscription(ctx, p))
		}
		same(t, "alice's subscriptions, oldest first", []domain.PushSubscription{first, second, third}, listPush(t, s, alice))
		sameIDs(t, "bob's subscriptions", []string{"bobs"}, idsOf(listPush(t, s, bob), pushDevice))
		sameIDs(t, "subscriptions of a user without any", nil, idsOf(listPush(t, s, "nobody"), pushDevice))
	}},
	{"Push/PutReplacesPerDevice", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedDevices(t, s, fullDevice("dev-1", alice, at(0)), fullDevice("dev-2", alice, at(0)))
		other := fullPushSubscription("dev-2", alice, at(time.Minute))
		ok(t, "PutPushSubscription dev-2", s.PutPushSubscription(ctx, other))
		ok(t, "PutPushSubscription dev-1", s.PutPushSubscription(ctx, fullPushSubscription("dev-1", alice, at(0))))
		// The browser renewed its subscription: every field changes, and the new one is the newer.
		renewed := domain.PushSubscription{
			DeviceID: "dev-1", Subject: alice, Endpoint: "https://updates.push.services.mozilla.com/wpush/v2/renewed",
			P256DH: "BOrenewed", Auth: "renewed-auth", CreatedAt: at(2 * time.Minute),
		}
		ok(t, "PutPushSubscription dev-1 again", s.PutPushSubscription(ctx, renewed))
		same(t, "subscriptions after the renewal", []domain.PushSubscription{other, renewed}, listPush(t, s, alice))
	}},
	{"Push/Delete", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedDevices(t, s, fullDevice("dev-1", alice, at(0)), fullDevice("dev-2", alice, at(0)))
		kept := fullPushSubscription("dev-2", alice, at(time.Minute))
		ok(t, "PutPushSubscription", s.PutPushSubscription(ctx, fullPushSubscription("dev-1", alice, at(0))))
		ok(t, "PutPushSubscription", s.PutPushSubscription(ctx, kept))
		ok(t, "DeletePushSubscription", s.DeletePushSubscription(ctx, "dev-1"))
		same(t, "subscriptions after a delete", []domain.PushSubscription{kept}, listPush(t, s, alice))
		ok(t, "DeletePushSubscription again", s.DeletePushSubscription(ctx, "dev-1"))
		ok(t, "DeletePushSubscription of a device that never had one", s.DeletePushSubscription(ctx, "nothing"))
		same(t, "subscriptions after deleting missing ones", []domain.PushSubscription{kept}, listPush(t, s, alice))
		// The device may subscribe again.
		again := fullPushSubscription("dev-1", alice, at(time.Hour))
		ok(t, "PutPushSubscription after the delete", s.PutPushSubscription(ctx, again))
		same(t, "subscriptions after subscribing again", []domain.PushSubscription{kept, again}, listPush(t, s, alice))
	}},
}

func listPasskeys(t *testing.T, s domain.Store, subject string) []domain.Passkey {
	t.Helper()
	got, err := s.ListPasskeys(t.Context(), subject)
	ok(t, "ListPasskeys "+subject, err)
	return got
}

var passkeyTests = []test{
	{"Passkey/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		full := usedPasskey("cred-full", alice, at(0))
		// Never used, no device, no name; Credential empty but not nil.
		minimal := domain.Passkey{ID: "cred-minimal", Subject: bob, Credential: json.RawMessage{}}
		for _, p := range []domain.Passkey{full, minimal} {
			ok(t, "CreatePasskey "+p.ID, s.CreatePasskey(ctx, p))
			same(t, "passkeys of "+p.Subject, []domain.Passkey{p}, listPasskeys(t, s, p.Subject))
		}
	}},
	{"Passkey/CreateDuplicate", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		p := usedPasskey("cred", alice, at(0))
		ok(t, "CreatePasskey", s.CreatePasskey(ctx, p))
		// Credential IDs are unique across users.
		dup := usedPasskey("cred", bob, at(time.Hour))
		dup.Name = "Bob's key"
		isErr(t, "CreatePasskey with an existing ID", s.CreatePasskey(ctx, dup), domain.ErrAlreadyExists)
		same(t, "alice's passkeys after the duplicate create", []domain.Passkey{p}, listPasskeys(t, s, alice))
		sameIDs(t, "bob's passkeys after the duplicate create", nil, idsOf(listPasskeys(t, s, bob), passkeyID))
	}},
	{"Passkey/ListOldestFirst", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		second := usedPasskey("a-second", alice, at(2*time.Minute))
		first := usedPasskey("b-first", alice, at(time.Minute))
		third := usedPasskey("c-third", alice, at(3*time.Minute))
		for _, p := range []domain.Passkey{second, usedPasskey("bobs", bob, at(0)), third, first} {
			ok(t, "CreatePasskey", s.CreatePasskey(ctx, p))
		}
		same(t, "alice's passkeys, oldest first", []domain.Passkey{first, second, third}, listPasskeys(t, s, alice))
		sameIDs(t, "bob's passkeys", []string{"bobs"}, idsOf(listPasskeys(t, s, bob), passkeyID))
		sameIDs(t, "passkeys of a user without any", nil, idsOf(listPasskeys(t, s, "nobody"), passkeyID))
	}},
	{"UpdatePasskey/Use", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		p := domain.Passkey{
			ID: "cred", Subject: alice, Name: "Laptop", Credential: json.RawMessage(`{"sign_count":0}`), CreatedAt: at(0),
		}
		ok(t, "CreatePasskey", s.CreatePasskey(ctx, p))
		want := p
		want.LastUsedAt, want.Credential = at(time.Hour), json.RawMessage(credential)
		got, err := s.UpdatePasskey(ctx, "cred", func(p *domain.Passkey) error {
			if string(p.Credential) != `{"sign_count":0}` {
				t.Errorf("UpdatePasskey gave fn the credential %s", p.Credential)
			}
			p.LastUsedAt, p.Credential = at(time.Hour), json.RawMessage(credential)
			return nil
		})
		ok(t, "UpdatePasskey", err)
		same(t, "returned passkey", want, got)
		same(t, "stored passkeys", []domain.Passkey{want}, listPasskeys(t, s, alice))

		// Every other field may change too.
		renamed := usedPasskey("cred", alice, at(time.Minute))
		got, err = s.UpdatePasskey(ctx, "cred", func(p *domain.Passkey) error {
			*p = renamed
			return nil
		})
		ok(t, "UpdatePasskey of every field", err)
		same(t, "returned passkey", renamed, got)
		same(t, "stored passkeys", []domain.Passkey{renamed}, listPasskeys(t, s, alice))
	}},
	{"UpdatePasskey/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		p := usedPasskey("cred", alice, at(0))
		ok(t, "CreatePasskey", s.CreatePasskey(ctx, p))
		_, err := s.UpdatePasskey(ctx, "cred", func(p *domain.Passkey) error {
			p.LastUsedAt, p.Name, p.Credential = at(2*time.Hour), "changed", json.RawMessage(`{}`)
			return errBoom
		})
		isErr(t, "UpdatePasskey whose function fails", err, errBoom)
		same(t, "passkeys after a failed update", []domain.Passkey{p}, listPasskeys(t, s, alice))
	}},
	{"UpdatePasskey/Missing", func(t *testing.T, s domain.Store) {
		called := false
		_, err := s.UpdatePasskey(t.Context(), "nothing", func(*domain.Passkey) error {
			called = true
			return nil
		})
		isErr(t, "UpdatePasskey of a missing passkey", err, domain.ErrNotFound)
		if called {
			t.Error("UpdatePasskey called fn for a missing passkey")
		}
	}},
	{"Passkey/ReturnsCopies", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		p := usedPasskey("cred", alice, at(0))
		want := usedPasskey("cred", alice, at(0))
		ok(t, "CreatePasskey", s.CreatePasskey(ctx, p))
		p.Credential[0] = '[' // the caller reuses its buffers
		got := listPasskeys(t, s, alice)
		if len(got) == 1 {
			got[0].Credential[0] = '['
		}
		same(t, "passkeys after the caller changed its copies", []domain.Passkey{want}, listPasskeys(t, s, alice))
	}},
}
