package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// base is the suite's reference time. It has nanoseconds and is not in UTC, to check that backends
// store the instant, in UTC, to the microsecond.
var base = time.Date(2031, time.March, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+2", 2*60*60))

// at returns base shifted by d.
func at(d time.Duration) time.Time { return base.Add(d) }

// Request IDs, subjects and clients used across tests.
const (
	alice  = "user-alice"
	bob    = "user-bob"
	agent  = "client-agent"
	agent2 = "client-other-agent"
)

// jwk is a device's public key as the authenticator sends it, with its own spacing, to check that
// JSON is stored byte for byte.
const jwk = `{"kty":"EC", "crv":"P-256",  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

// details is an authorization_details array with spacing, key order and escapes to preserve.
const details = `[ {"type":"trade","symbol":"ACME","side":"buy","quantity":100,"limit_price":"12.50",` +
	`"note":"\"urgent\" \u00e9 é\n","locations":["https://api.tradepro.example"]} ]`

// fullClient has every field set.
func fullClient(id string) domain.Client {
	return domain.Client{
		ID:                        id,
		Name:                      "Trading agent ✓ " + id,
		GrantTypes:                []string{"urn:openid:params:grant-type:ciba", "refresh_token"},
		SecretHash:                sha("secret-" + id),
		AuthMethod:                domain.AuthSecretBasic,
		JWKS:                      json.RawMessage(`{"keys": [` + jwk + `]}`),
		JWKSURI:                   "https://agent.example/" + id + "/jwks.json",
		DeliveryMode:              domain.DeliveryPing,
		NotificationEndpoint:      "https://agent.example/" + id + "/ciba",
		RequestSigningAlg:         "ES256",
		UserCodeParameter:         true,
		AuthorizationDetailsTypes: []string{"trade", "payment_initiation"},
		Scopes:                    []string{"openid", "offline_access", "trade:write"},
		// An audience with quotes, a backslash and non-ASCII checks that lists are encoded properly.
		Audiences:             []string{"https://api.tradepro.example", `urn:example:"quoted"\path`, "urn:ünïcode"},
		IDTokenSigningAlg:     "ES256",
		RefreshTokens:         true,
		AccessTokenTTL:        15*time.Minute + 250*time.Millisecond,
		ExpiredAsAccessDenied: true,
		CreatedAt:             at(0),
		UpdatedAt:             at(time.Minute),
	}
}

func fullUser(subject, email string) domain.User {
	return domain.User{
		Subject:      subject,
		Email:        email,
		Name:         "Name of " + subject,
		Phone:        "+33612345678",
		Channels:     []string{"sms", "webpush", "email"}, // the user's order, which must be kept
		UserCodeHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		CreatedAt:    at(0),
		UpdatedAt:    at(time.Second),
	}
}

func fullDevice(id, subject string, created time.Time) domain.Device {
	return domain.Device{
		ID:        id,
		Subject:   subject,
		Name:      "Alice's phone " + id,
		Kind:      "web",
		PublicKey: json.RawMessage(jwk),
		CreatedAt: created,
	}
}

// pendingRequest is a request as the backchannel endpoint creates it.
func pendingRequest(id, subject, clientID string, created time.Time) domain.Request {
	return domain.Request{
		ID:                      id,
		AuthReqIDHash:           sha("auth-req-id-" + id),
		ClientID:                clientID,
		ClientName:              "Trading agent",
		Subject:                 subject,
		Scope:                   []string{"openid", "trade:write"},
		Audience:                []string{"https://api.tradepro.example"},
		BindingMessage:          "Buy 100 ACME at 12.50 — code W4K7",
		AuthorizationDetails:    json.RawMessage(details),
		ACRValues:               []string{"urn:countersign:device"},
		DeliveryMode:            domain.DeliveryPoll,
		NotificationToken:       "notification-token-" + id,
		VerificationCode:        "07", // a leading zero: a code is a string, not a number
		RequireUserVerification: true,
		CallbackAuthReqID:       "auth-req-id-" + id,
		Status:                  domain.StatusPending,
		CreatedAt:               created,
		ExpiresAt:               created.Add(5 * time.Minute),
		Interval:                5 * time.Second,
	}
}

// decidedRequest has every field set, receipt included, as after approval and redemption.
func decidedRequest(id, subject, clientID string, created time.Time) domain.Request {
	r := pendingRequest(id, subject, clientID, created)
	r.DeliveryMode = domain.DeliveryPush
	r.Status = domain.StatusApproved
	r.Interval = 7*time.Second + 500*time.Millisecond
	r.RemindedAt = created.Add(30*time.Second + time.Millisecond)
	rc := receipt("dev-1", domain.DecisionApprove, created.Add(time.Minute))
	// Use cases set Reported on denials only; the store keeps whatever it is given, and the fixture
	// must set every field. Request/ReceiptFlags checks each flag on its own.
	rc.Reported, rc.UserVerified = true, true
	r.Receipt = &rc
	r.DecidedAt = created.Add(time.Minute + time.Millisecond)
	r.RedeemedAt = created.Add(2 * time.Minute)
	return r
}

// receipt is a device's signed decision.
func receipt(deviceID string, d domain.Decision, decided time.Time) domain.Receipt {
	return domain.Receipt{
		DeviceID:    deviceID,
		Decision:    d,
		ShownSHA256: sha("shown-" + deviceID),
		Signature:   "eyJhbGciOiJFUzI1NiJ9.eyJyZXF1ZXN0X2lkIjoicmVxIn0.c2lnbmF0dXJl-" + deviceID,
		DecidedAt:   decided,
	}
}

func refreshToken(id, family string, issued time.Time) domain.Token {
	return domain.Token{
		ID:                   id,
		Kind:                 domain.TokenRefresh,
		Hash:                 sha("refresh-" + id),
		ClientID:             agent,
		Subject:              alice,
		Scope:                []string{"openid", "offline_access"},
		Audience:             []string{"https://api.tradepro.example"},
		AuthorizationDetails: json.RawMessage(details),
		RequestID:            "req-" + id,
		FamilyID:             family,
		IssuedAt:             issued,
		ExpiresAt:            issued.Add(30 * 24 * time.Hour),
	}
}

// usedRefreshToken has every field set.
func usedRefreshToken(id, family string, issued time.Time) domain.Token {
	tok := refreshToken(id, family, issued)
	tok.UsedAt, tok.RevokedAt = issued.Add(time.Hour), issued.Add(2*time.Hour)
	return tok
}

func accessToken(id string, issued time.Time) domain.Token {
	return domain.Token{
		ID:        id,
		Kind:      domain.TokenAccess,
		ClientID:  agent,
		Subject:   alice,
		Scope:     []string{"openid"},
		RequestID: "req-" + id,
		IssuedAt:  issued,
		ExpiresAt: issued.Add(15 * time.Minute),
	}
}

func outboxMessage(kind, requestID string, next time.Time) domain.OutboxMessage {
	return domain.OutboxMessage{
		Kind:          kind,
		RequestID:     requestID,
		Target:        "https://agent.example/ciba",
		Payload:       json.RawMessage(`{"auth_req_id": "` + requestID + `"}`),
		NextAttemptAt: next,
		CreatedAt:     at(0),
	}
}

// fullMessage has every field set but those the store assigns (ID, and Status, which EnqueueOutbox
// sets to pending).
func fullMessage() domain.OutboxMessage {
	m := outboxMessage("ciba.ping", "req-1", at(time.Minute))
	m.Attempts, m.LastError = 2, "connection refused"
	m.LeaseUntil, m.DeliveredAt = at(2*time.Minute), at(3*time.Minute)
	return m
}

// fullPushSubscription has every field set, as a browser's PushManager gives them.
func fullPushSubscription(deviceID, subject string, created time.Time) domain.PushSubscription {
	return domain.PushSubscription{
		DeviceID:  deviceID,
		Subject:   subject,
		Endpoint:  "https://fcm.googleapis.com/fcm/send/c1KrmpTuRm0:APA91bE-" + deviceID,
		P256DH:    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
		Auth:      "tBHItJI5svbpez7KI4CCXg-" + deviceID,
		CreatedAt: created,
	}
}

// credential is a verifier's record of a WebAuthn credential, with spacing to keep byte for byte.
const credential = `{"public_key": "pQECAyYgASFYIPi7aC9Y", "sign_count":7,  "flags":{"be":true,"bs":false}}`

// usedPasskey has every field set.
func usedPasskey(id, subject string, created time.Time) domain.Passkey {
	return domain.Passkey{
		ID:         id,
		Subject:    subject,
		DeviceID:   "dev-" + subject,
		Name:       "YubiKey 5 ✓ " + id,
		Credential: json.RawMessage(credential),
		CreatedAt:  created,
		LastUsedAt: created.Add(time.Hour),
	}
}

func revokedDevice(id, subject string, created time.Time) domain.Device {
	d := fullDevice(id, subject, created)
	d.RevokedAt = created.Add(time.Hour)
	return d
}

func usedEnrollment(code, subject string) domain.Enrollment {
	return domain.Enrollment{
		CodeHash: sha(code), Subject: subject, CreatedAt: at(0), ExpiresAt: at(time.Hour),
		UsedAt: at(time.Minute), DeviceID: "dev-" + subject,
	}
}

func retiredKey(id string, created time.Time) domain.SigningKey {
	return domain.SigningKey{
		ID: id, Algorithm: "ES256", Use: "sig", Status: domain.KeyRetired, PrivateKey: sha("pkcs8-" + id),
		CreatedAt: created, ActivatedAt: created.Add(time.Minute), RetiredAt: created.Add(2 * time.Hour),
	}
}

// fixtureTests check the suite itself: the fixtures that round-trip through the store must set every
// field of their entity, so that a field added to the domain fails here until the fixtures (and so
// every backend) cover it, instead of being silently dropped by a backend that does not store it.
var fixtureTests = []test{
	{"Fixtures/SetEveryField", func(t *testing.T, _ domain.Store) {
		for _, f := range []struct {
			name  string
			value any
			skip  []string // fields the store assigns
		}{
			{"fullClient", fullClient("c"), nil},
			{"fullUser", fullUser("u", "u@example.com"), nil},
			{"revokedDevice", revokedDevice("d", "u", at(0)), nil},
			{"usedEnrollment", usedEnrollment("code", "u"), nil},
			{"decidedRequest", decidedRequest("r", "u", "c", at(0)), nil},
			{"usedRefreshToken", usedRefreshToken("t", "f", at(0)), nil},
			{"retiredKey", retiredKey("k", at(0)), nil},
			{"event", event(1, "t", "u", "c", "r"), []string{"ID"}},
			{"fullMessage", fullMessage(), []string{"ID", "Status"}},
			{"fullPushSubscription", fullPushSubscription("d", "u", at(0)), nil},
			{"usedPasskey", usedPasskey("p", "u", at(0)), nil},
		} {
			var unset []string
			unsetFields("", reflect.ValueOf(f.value), f.skip, &unset)
			if len(unset) > 0 {
				t.Errorf("storetest fixture %s leaves %s unset: set them so that backends must store them", f.name, strings.Join(unset, ", "))
			}
		}
	}},
}

// unsetFields lists the zero fields of a struct, recursing into pointed-to structs.
func unsetFields(path string, v reflect.Value, skip []string, out *[]string) {
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if slices.Contains(skip, name) {
			continue
		}
		f := v.Field(i)
		switch {
		case f.IsZero():
			*out = append(*out, path+name)
		case f.Kind() == reflect.Pointer && f.Elem().Kind() == reflect.Struct:
			unsetFields(path+name+".", f.Elem(), nil, out)
		}
	}
}

// seedUsers stores alice and bob (requests, devices and enrollments need their user).
func seedUsers(t *testing.T, s domain.Store) {
	t.Helper()
	ctx := t.Context()
	ok(t, "PutUser alice", s.PutUser(ctx, fullUser(alice, "alice@example.com")))
	ok(t, "PutUser bob", s.PutUser(ctx, fullUser(bob, "bob@example.com")))
}

// createRequests stores requests in one transaction (many single writes would each wait for a
// durable commit).
func createRequests(t *testing.T, s domain.Store, rs ...domain.Request) {
	t.Helper()
	ok(t, "create requests", s.InTx(t.Context(), func(tx domain.Store) error {
		for _, r := range rs {
			if err := tx.CreateRequest(t.Context(), r); err != nil {
				return fmt.Errorf("CreateRequest %s: %w", r.ID, err)
			}
		}
		return nil
	}))
}

// mustGetRequest reads a request or stops the test.
func mustGetRequest(t *testing.T, s domain.Store, id string) domain.Request {
	t.Helper()
	r, err := s.GetRequest(t.Context(), id)
	ok(t, "GetRequest "+id, err)
	return r
}

// peekEnrollment reads an enrollment without changing it (there is no GetEnrollment).
func peekEnrollment(ctx context.Context, s domain.Store, codeHash []byte) (domain.Enrollment, error) {
	return s.UpdateEnrollment(ctx, codeHash, func(*domain.Enrollment) error { return nil })
}

func requestID(r domain.Request) string           { return r.ID }
func deviceID(d domain.Device) string             { return d.ID }
func keyID(k domain.SigningKey) string            { return k.ID }
func clientID(c domain.Client) string             { return c.ID }
func userSubject(u domain.User) string            { return u.Subject }
func outboxID(m domain.OutboxMessage) string      { return fmt.Sprint(m.ID) }
func pushDevice(p domain.PushSubscription) string { return p.DeviceID }
func passkeyID(p domain.Passkey) string           { return p.ID }
func auditType(e domain.AuditEvent) string        { return e.Type }
