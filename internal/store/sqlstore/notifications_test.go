package sqlstore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// A database created by an older binary (schema 0001, with data) is brought up to date on open, and
// its rows read back with the new fields zero.
func TestMigrate_UpgradesExistingDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	ms, err := loadMigrations("migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("%d migrations, want at least 2", len(ms))
	}

	// Build the old database with 0001 only, and write rows as the old binary did.
	if err := createPrivateFile(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, "foreign_keys(1)", "journal_mode(WAL)"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), conn, sqliteDialect, ms[:1]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (subject, email, email_lower, name, user_code_hash, created_at, updated_at)
		 VALUES ('alice', 'Alice@example.com', 'alice@example.com', 'Alice', '', 1, 2)`,
		`INSERT INTO devices (id, subject, name, kind, created_at) VALUES ('dev', 'alice', 'phone', 'web', 1)`,
		`INSERT INTO requests (id, auth_req_id_hash, client_id, subject, scope, status, created_at, expires_at,
		 interval_ns, receipt_device_id, receipt_decision, receipt_shown_sha256, receipt_signature, receipt_decided_at, decided_at)
		 VALUES ('decided', x'01', 'agent', 'alice', '["openid"]', 'approved', 1, 2, 5000000000,
		 'dev', 'approve', x'02', 'sig', 3, 3)`,
		`INSERT INTO requests (id, auth_req_id_hash, client_id, subject, status, created_at, expires_at)
		 VALUES ('pending', x'03', 'agent', 'alice', 'pending', 1, 2)`,
		`INSERT INTO outbox (kind, status, attempts) VALUES ('ping', 'pending', 4)`,
	} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	db.Close()

	s := openTestStore(t, path)
	ctx := t.Context()
	u, err := s.GetUserByEmail(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.Phone != "" || u.Channels != nil || u.Name != "Alice" {
		t.Errorf("old user read back as %+v", u)
	}
	r, err := s.GetRequestByAuthReqID(ctx, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Receipt == nil || r.Receipt.Reported || r.Receipt.UserVerified || r.Receipt.Signature != "sig" ||
		r.VerificationCode != "" || r.RequireUserVerification || !r.RemindedAt.IsZero() {
		t.Errorf("old decided request read back as %+v, receipt %+v", r, r.Receipt)
	}
	if r := mustRequest(t, s, "pending"); r.Receipt != nil || r.RequireUserVerification {
		t.Errorf("old pending request read back as %+v", r)
	}
	// The receipt flags were filled in for existing receipts only, so that receipt_* columns are
	// NULL exactly when there is no receipt.
	rows, err := s.readDB.QueryContext(ctx, `SELECT id, receipt_reported, receipt_user_verified FROM requests ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var (
			id                 string
			reported, verified sql.NullInt64
		)
		if err := rows.Scan(&id, &reported, &verified); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+":"+nullInt(reported)+","+nullInt(verified))
	}
	rows.Close()
	if want := "decided:0,0 pending:NULL,NULL"; strings.Join(got, " ") != want {
		t.Errorf("receipt flags after the upgrade: %s, want %s", strings.Join(got, " "), want)
	}

	// Old devices take subscriptions; old messages keep counting attempts.
	if err := s.PutPushSubscription(ctx, domain.PushSubscription{DeviceID: "dev", Subject: "alice", Endpoint: "https://push.example/1"}); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimOutbox(ctx, t0, t0.Add(time.Minute), 10)
	if err != nil || len(claimed) != 1 || claimed[0].Attempts != 5 {
		t.Errorf("ClaimOutbox of an old message: %+v, error %v; want attempts 5", claimed, err)
	}
}

func nullInt(v sql.NullInt64) string {
	if !v.Valid {
		return "NULL"
	}
	return string(rune('0' + v.Int64))
}

func mustRequest(t *testing.T, s *Store, id string) domain.Request {
	t.Helper()
	r, err := s.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPushSubscriptionForeignKeys(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := s.PutUser(ctx, testUser(u)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateDevice(ctx, domain.Device{ID: "alices", Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	err := s.PutPushSubscription(ctx, domain.PushSubscription{DeviceID: "nothing", Subject: "alice"})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("subscription of a missing device: %v, want ErrNotFound", err)
	}
	// Filed under someone who does not own the device, it would send alice's requests to bob.
	err = s.PutPushSubscription(ctx, domain.PushSubscription{DeviceID: "alices", Subject: "bob"})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("subscription of alice's device under bob: %v, want ErrNotFound", err)
	}
	if subs, _ := s.ListPushSubscriptions(ctx, "bob"); len(subs) != 0 {
		t.Errorf("bob's subscriptions: %+v", subs)
	}
	err = s.CreatePasskey(ctx, domain.Passkey{ID: "cred", Subject: "nobody"})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("passkey of a missing user: %v, want ErrNotFound", err)
	}

	// Devices are revoked, not deleted; were a device row deleted, its subscription goes too.
	if err := s.PutPushSubscription(ctx, domain.PushSubscription{DeviceID: "alices", Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.w.do(ctx, func(tx *txStore) error {
		_, err := tx.exec(ctx, `DELETE FROM devices WHERE id = ?`, "alices")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if subs, err := s.ListPushSubscriptions(ctx, "alice"); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after deleting the device: %+v, error %v", subs, err)
	}
}

func TestUpdatePasskeyRefusesKeyChange(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if err := s.PutUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	p := domain.Passkey{ID: "cred", Subject: "alice", Credential: json.RawMessage(`{}`), CreatedAt: t0}
	if err := s.CreatePasskey(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdatePasskey(ctx, "cred", func(p *domain.Passkey) error {
		p.ID = "other"
		return nil
	}); err == nil {
		t.Error("UpdatePasskey let fn change the ID")
	}
	if ps, err := s.ListPasskeys(ctx, "alice"); err != nil || len(ps) != 1 || ps[0].ID != "cred" {
		t.Errorf("passkeys after a refused key change: %+v, error %v", ps, err)
	}
}

// The hot and listing queries are answered from indexes: no table scan, no sort.
func TestQueryPlans(t *testing.T) {
	s := newTestStore(t)
	for _, c := range []struct {
		name, query string
		args        []any
		index       string
	}{
		{"GetRequestByAuthReqID", sqlGetRequestByAuthReqID, []any{[]byte{1}}, "sqlite_autoindex_requests_2"},
		{"GetClient", sqlGetClient, []any{"c"}, "sqlite_autoindex_clients_1"},
		{"ListPushSubscriptions", sqlListPushSubscriptions, []any{"alice"}, "push_subscriptions_subject"},
		{"ListPasskeys", sqlListPasskeys, []any{"alice"}, "passkeys_subject"},
		{"DeletePushSubscription", sqlDeletePushSubscription, []any{"dev"}, "sqlite_autoindex_push_subscriptions_1"},
		// The deny-and-report hold check on every backchannel request (authz.checkReportHold).
		{"ListAudit by type, subject and client", `SELECT ` + auditCols + ` FROM audit_events WHERE 1 = 1 AND subject = ? AND client_id = ? AND event_type = ? ORDER BY id DESC LIMIT ?`,
			[]any{"alice", "agent", "request.reported", 1}, "audit_events_type_subject_client"},
	} {
		rows, err := s.readDB.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if len(plan) != 1 || !strings.Contains(text, c.index) || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s: plan %q, want one search of %s", c.name, text, c.index)
		}
	}
}
