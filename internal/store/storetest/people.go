package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

var clientTests = []test{
	{"Client/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		full := fullClient("full")
		// Every optional field empty; JWKS empty but not nil.
		minimal := domain.Client{ID: "minimal", JWKS: json.RawMessage{}}
		for _, c := range []domain.Client{full, minimal} {
			ok(t, "PutClient "+c.ID, s.PutClient(ctx, c))
			got, err := s.GetClient(ctx, c.ID)
			ok(t, "GetClient "+c.ID, err)
			same(t, "client "+c.ID, c, got)
		}
	}},
	{"Client/GetMissing", func(t *testing.T, s domain.Store) {
		_, err := s.GetClient(t.Context(), "nobody")
		isErr(t, "GetClient of a missing client", err, domain.ErrNotFound)
	}},
	{"Client/PutReplaces", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "PutClient", s.PutClient(ctx, fullClient("c")))
		// Replace with every field changed, and optional ones cleared.
		next := domain.Client{
			ID: "c", Name: "Renamed", AuthMethod: domain.AuthPrivateKeyJWT, JWKSURI: "https://new.example/jwks",
			DeliveryMode: domain.DeliveryPoll, Scopes: []string{"openid"}, AccessTokenTTL: 1500 * time.Millisecond,
			CreatedAt: at(time.Hour), UpdatedAt: at(2 * time.Hour),
		}
		ok(t, "PutClient again", s.PutClient(ctx, next))
		got, err := s.GetClient(ctx, "c")
		ok(t, "GetClient", err)
		same(t, "replaced client", next, got)
		all, err := s.ListClients(ctx)
		ok(t, "ListClients", err)
		sameIDs(t, "clients after replacing", []string{"c"}, idsOf(all, clientID))
	}},
	{"Client/List", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		all, err := s.ListClients(ctx)
		ok(t, "ListClients", err)
		if len(all) != 0 {
			t.Fatalf("ListClients of an empty store: got %d clients", len(all))
		}
		want := map[string]domain.Client{}
		for _, id := range []string{"b", "a", "c"} {
			c := fullClient(id)
			want[id] = c
			ok(t, "PutClient", s.PutClient(ctx, c))
		}
		all, err = s.ListClients(ctx)
		ok(t, "ListClients", err)
		sameSet(t, "listed clients", []string{"a", "b", "c"}, idsOf(all, clientID))
		for _, c := range all {
			same(t, "listed client "+c.ID, want[c.ID], c)
		}
	}},
	{"Client/Delete", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "PutClient", s.PutClient(ctx, fullClient("gone")))
		ok(t, "PutClient", s.PutClient(ctx, fullClient("kept")))
		ok(t, "DeleteClient", s.DeleteClient(ctx, "gone"))
		_, err := s.GetClient(ctx, "gone")
		isErr(t, "GetClient after DeleteClient", err, domain.ErrNotFound)
		_, err = s.GetClient(ctx, "kept")
		ok(t, "GetClient of another client", err)
		isErr(t, "DeleteClient of a missing client", s.DeleteClient(ctx, "gone"), domain.ErrNotFound)
	}},
	{"Client/ReturnsCopies", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		c := fullClient("c")
		want := fullClient("c")
		ok(t, "PutClient", s.PutClient(ctx, c))
		c.SecretHash[0] ^= 0xff // the caller reuses its buffers
		c.Scopes[0] = "changed"
		got, err := s.GetClient(ctx, "c")
		ok(t, "GetClient", err)
		got.SecretHash[0] ^= 0xff
		got.Scopes[0] = "changed again"
		got, err = s.GetClient(ctx, "c")
		ok(t, "GetClient", err)
		same(t, "client after the caller changed its copies", want, got)
	}},
}

var userTests = []test{
	{"User/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		for _, u := range []domain.User{fullUser(alice, "Alice@Example.com"), {Subject: "minimal"}} {
			ok(t, "PutUser "+u.Subject, s.PutUser(ctx, u))
			got, err := s.GetUser(ctx, u.Subject)
			ok(t, "GetUser", err)
			same(t, "user "+u.Subject, u, got)
		}
	}},
	{"User/GetMissing", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "PutUser without email", s.PutUser(ctx, domain.User{Subject: "no-email"}))
		_, err := s.GetUser(ctx, "nobody")
		isErr(t, "GetUser of a missing user", err, domain.ErrNotFound)
		_, err = s.GetUserByEmail(ctx, "nobody@example.com")
		isErr(t, "GetUserByEmail of a missing email", err, domain.ErrNotFound)
		_, err = s.GetUserByEmail(ctx, "")
		isErr(t, "GetUserByEmail of the empty email", err, domain.ErrNotFound)
	}},
	{"User/EmailCaseInsensitive", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		a := fullUser(alice, "Alice.Smith@Example.COM")
		z := fullUser("user-zoe", "Zoë.Ørsted@Example.com")
		ok(t, "PutUser", s.PutUser(ctx, a))
		ok(t, "PutUser", s.PutUser(ctx, z))
		for email, want := range map[string]domain.User{
			"Alice.Smith@Example.COM": a, "alice.smith@example.com": a, "ALICE.SMITH@EXAMPLE.COM": a,
			"zoë.ørsted@example.com": z, "ZOË.ØRSTED@EXAMPLE.COM": z,
		} {
			got, err := s.GetUserByEmail(ctx, email)
			if err != nil {
				t.Errorf("GetUserByEmail(%q): %v", email, err)
				continue
			}
			// The email comes back as it was stored, not folded.
			same(t, "user found by "+email, want, got)
		}
	}},
	{"User/EmailUnique", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "PutUser alice", s.PutUser(ctx, fullUser(alice, "alice@example.com")))
		isErr(t, "PutUser of a new user with alice's email in other case",
			s.PutUser(ctx, fullUser(bob, "ALICE@example.com")), domain.ErrAlreadyExists)
		_, err := s.GetUser(ctx, bob)
		isErr(t, "GetUser of the user whose put failed", err, domain.ErrNotFound)

		bobUser := fullUser(bob, "bob@example.com")
		ok(t, "PutUser bob", s.PutUser(ctx, bobUser))
		isErr(t, "PutUser changing bob's email to alice's",
			s.PutUser(ctx, fullUser(bob, "Alice@Example.com")), domain.ErrAlreadyExists)
		got, err := s.GetUser(ctx, bob)
		ok(t, "GetUser bob", err)
		same(t, "bob after the failed change", bobUser, got)

		// Users without an email never clash.
		ok(t, "PutUser without email", s.PutUser(ctx, domain.User{Subject: "anon1"}))
		ok(t, "PutUser without email", s.PutUser(ctx, domain.User{Subject: "anon2"}))
	}},
	{"User/PutReplaces", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		ok(t, "PutUser", s.PutUser(ctx, fullUser(alice, "alice@example.com")))
		// Changing the case of one's own email is not a clash.
		recased := fullUser(alice, "ALICE@example.com")
		recased.Name = "Alice S."
		ok(t, "PutUser with the email recased", s.PutUser(ctx, recased))
		got, err := s.GetUserByEmail(ctx, "alice@example.com")
		ok(t, "GetUserByEmail", err)
		same(t, "user after recasing the email", recased, got)

		moved := fullUser(alice, "alice@new.example")
		ok(t, "PutUser with a new email", s.PutUser(ctx, moved))
		_, err = s.GetUserByEmail(ctx, "alice@example.com")
		isErr(t, "GetUserByEmail of the old email", err, domain.ErrNotFound)
		got, err = s.GetUserByEmail(ctx, "alice@new.example")
		ok(t, "GetUserByEmail of the new email", err)
		same(t, "user after changing the email", moved, got)
		// The old email is free for someone else.
		ok(t, "PutUser bob with alice's old email", s.PutUser(ctx, fullUser(bob, "Alice@example.com")))

		// Optional fields cleared.
		cleared := domain.User{Subject: alice, Email: "alice@new.example", CreatedAt: at(0)}
		ok(t, "PutUser clearing optional fields", s.PutUser(ctx, cleared))
		got, err = s.GetUser(ctx, alice)
		ok(t, "GetUser", err)
		same(t, "user after clearing phone and channels", cleared, got)
	}},
	{"User/List", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		want := map[string]domain.User{}
		for _, u := range []domain.User{fullUser("u2", "u2@example.com"), fullUser("u1", ""), fullUser("u3", "u3@example.com")} {
			want[u.Subject] = u
			ok(t, "PutUser", s.PutUser(ctx, u))
		}
		all, err := s.ListUsers(ctx)
		ok(t, "ListUsers", err)
		sameSet(t, "listed users", []string{"u1", "u2", "u3"}, idsOf(all, userSubject))
		for _, u := range all {
			same(t, "listed user "+u.Subject, want[u.Subject], u)
		}
	}},
}

var deviceTests = []test{
	{"Device/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		active := fullDevice("dev-active", alice, at(0))
		revoked := revokedDevice("dev-revoked", alice, at(time.Second))
		minimal := domain.Device{ID: "dev-minimal", Subject: bob}
		for _, d := range []domain.Device{active, revoked, minimal} {
			ok(t, "CreateDevice "+d.ID, s.CreateDevice(ctx, d))
			got, err := s.GetDevice(ctx, d.ID)
			ok(t, "GetDevice", err)
			same(t, "device "+d.ID, d, got)
		}
	}},
	{"Device/CreateDuplicate", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		d := fullDevice("dev", alice, at(0))
		ok(t, "CreateDevice", s.CreateDevice(ctx, d))
		other := fullDevice("dev", bob, at(time.Hour))
		other.Name = "Bob's laptop"
		isErr(t, "CreateDevice with an existing ID", s.CreateDevice(ctx, other), domain.ErrAlreadyExists)
		got, err := s.GetDevice(ctx, "dev")
		ok(t, "GetDevice", err)
		same(t, "device after the duplicate create", d, got)
	}},
	{"Device/GetMissing", func(t *testing.T, s domain.Store) {
		_, err := s.GetDevice(t.Context(), "nothing")
		isErr(t, "GetDevice of a missing device", err, domain.ErrNotFound)
	}},
	{"Device/ListOldestFirst", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		second := fullDevice("b-second", alice, at(2*time.Minute))
		first := fullDevice("c-first", alice, at(time.Minute))
		third := fullDevice("a-third", alice, at(3*time.Minute))
		third.RevokedAt = at(4 * time.Minute)
		bobs := fullDevice("bobs", bob, at(0))
		for _, d := range []domain.Device{second, first, third, bobs} {
			ok(t, "CreateDevice", s.CreateDevice(ctx, d))
		}
		got, err := s.ListDevices(ctx, alice)
		ok(t, "ListDevices", err)
		sameIDs(t, "alice's devices, oldest first, revoked included", []string{"c-first", "b-second", "a-third"}, idsOf(got, deviceID))
		if len(got) == 3 {
			same(t, "listed revoked device", third, got[2])
		}
		got, err = s.ListDevices(ctx, "nobody")
		ok(t, "ListDevices of a user without devices", err)
		sameIDs(t, "devices of a user without devices", nil, idsOf(got, deviceID))
	}},
	{"Device/RevokeKeepsFirstTime", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		d := fullDevice("dev", alice, at(0))
		ok(t, "CreateDevice", s.CreateDevice(ctx, d))
		ok(t, "RevokeDevice", s.RevokeDevice(ctx, "dev", at(time.Hour)))
		ok(t, "RevokeDevice again", s.RevokeDevice(ctx, "dev", at(2*time.Hour)))
		got, err := s.GetDevice(ctx, "dev")
		ok(t, "GetDevice", err)
		d.RevokedAt = at(time.Hour)
		same(t, "device revoked twice", d, got)
		if got.Active() {
			t.Error("revoked device is still active")
		}
		isErr(t, "RevokeDevice of a missing device", s.RevokeDevice(ctx, "nothing", at(0)), domain.ErrNotFound)
	}},
	{"Device/CountActive", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		n, err := s.CountActiveDevices(ctx, alice)
		ok(t, "CountActiveDevices", err)
		if n != 0 {
			t.Errorf("CountActiveDevices before any device: got %d, want 0", n)
		}
		revokedAtCreation := fullDevice("d1", alice, at(0))
		revokedAtCreation.RevokedAt = at(time.Minute)
		for _, d := range []domain.Device{
			revokedAtCreation, fullDevice("d2", alice, at(0)), fullDevice("d3", alice, at(0)), fullDevice("d4", bob, at(0)),
		} {
			ok(t, "CreateDevice", s.CreateDevice(ctx, d))
		}
		ok(t, "RevokeDevice", s.RevokeDevice(ctx, "d3", at(time.Hour)))
		for subject, want := range map[string]int{alice: 1, bob: 1, "nobody": 0} {
			n, err := s.CountActiveDevices(ctx, subject)
			ok(t, "CountActiveDevices", err)
			if n != want {
				t.Errorf("CountActiveDevices(%s): got %d, want %d", subject, n, want)
			}
		}
	}},
}

var enrollmentTests = []test{
	{"Enrollment/RoundTrip", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		fresh := domain.Enrollment{CodeHash: sha("code-1"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(24 * time.Hour)}
		used := usedEnrollment("code-2", bob)
		for _, e := range []domain.Enrollment{fresh, used} {
			ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, e))
			got, err := peekEnrollment(ctx, s, e.CodeHash)
			ok(t, "UpdateEnrollment without change", err)
			same(t, "enrollment for "+e.Subject, e, got)
		}
	}},
	{"Enrollment/Use", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		e := domain.Enrollment{CodeHash: sha("code"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
		ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, e))
		got, err := s.UpdateEnrollment(ctx, e.CodeHash, func(e *domain.Enrollment) error {
			return e.Use(at(time.Minute), "dev-1")
		})
		ok(t, "UpdateEnrollment Use", err)
		want := e
		want.UsedAt, want.DeviceID = at(time.Minute), "dev-1"
		same(t, "returned enrollment", want, got)

		_, err = s.UpdateEnrollment(ctx, e.CodeHash, func(e *domain.Enrollment) error {
			return e.Use(at(2*time.Minute), "dev-2")
		})
		isErr(t, "second Use", err, domain.ErrEnrollmentUsed)
		got, err = peekEnrollment(ctx, s, e.CodeHash)
		ok(t, "read enrollment", err)
		same(t, "enrollment after a second Use", want, got)
	}},
	{"Enrollment/Expired", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		e := domain.Enrollment{CodeHash: sha("code"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
		ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, e))
		_, err := s.UpdateEnrollment(ctx, e.CodeHash, func(e *domain.Enrollment) error {
			return e.Use(at(time.Hour), "dev-1")
		})
		isErr(t, "Use at expiry", err, domain.ErrEnrollmentExpired)
		got, err := peekEnrollment(ctx, s, e.CodeHash)
		ok(t, "read enrollment", err)
		same(t, "enrollment after a late Use", e, got)
	}},
	{"Enrollment/ErrorRollsBack", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		e := domain.Enrollment{CodeHash: sha("code"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
		ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, e))
		_, err := s.UpdateEnrollment(ctx, e.CodeHash, func(e *domain.Enrollment) error {
			e.UsedAt, e.DeviceID, e.Subject = at(time.Minute), "dev-1", bob
			return errBoom
		})
		isErr(t, "UpdateEnrollment whose function fails", err, errBoom)
		got, err := peekEnrollment(ctx, s, e.CodeHash)
		ok(t, "read enrollment", err)
		same(t, "enrollment after a failed update", e, got)
	}},
	{"Enrollment/Missing", func(t *testing.T, s domain.Store) {
		called := false
		_, err := s.UpdateEnrollment(t.Context(), sha("nothing"), func(*domain.Enrollment) error {
			called = true
			return nil
		})
		isErr(t, "UpdateEnrollment of a missing code", err, domain.ErrNotFound)
		if called {
			t.Error("UpdateEnrollment called fn for a missing enrollment")
		}
	}},
	{"Enrollment/CreateDuplicate", func(t *testing.T, s domain.Store) {
		ctx := t.Context()
		seedUsers(t, s)
		e := domain.Enrollment{CodeHash: sha("code"), Subject: alice, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
		ok(t, "CreateEnrollment", s.CreateEnrollment(ctx, e))
		dup := e
		dup.Subject = bob
		isErr(t, "CreateEnrollment with an existing code hash", s.CreateEnrollment(ctx, dup), domain.ErrAlreadyExists)
		got, err := peekEnrollment(ctx, s, e.CodeHash)
		ok(t, "read enrollment", err)
		same(t, "enrollment after the duplicate create", e, got)
	}},
}
