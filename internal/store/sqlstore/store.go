package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// Store is a domain.Store on a SQL database. Reads outside InTx run on a pool of read connections;
// every write, and every InTx, is a unit of work for the single writer (see the package
// documentation). A Store is safe for concurrent use.
type Store struct {
	d       *dialect
	readDB  *sql.DB
	writeDB *sql.DB
	rp      *readPool
	r       ops // reads, on the read pool
	wc      *writeConn
	w       *writer

	closeOnce sync.Once
	closeErr  error
}

var _ domain.Store = (*Store)(nil)

func newStore(d *dialect, readDB, writeDB *sql.DB, conn *sql.Conn) *Store {
	rp := &readPool{db: readDB, d: d}
	wc := &writeConn{conn: conn, d: d, stmts: map[string]*sql.Stmt{}}
	return &Store{
		d: d, readDB: readDB, writeDB: writeDB,
		rp: rp, r: ops{x: rp},
		wc: wc, w: newWriter(wc),
	}
}

// WriterStats counts the group-commit writer's work since the Store was opened.
type WriterStats struct {
	// Units is how many write units (write calls and InTx calls) ran.
	Units int64
	// Commits is how many transactions committed. Units/Commits is the mean batch size.
	Commits int64
}

// WriterStats reports the writer's counters, for metrics and benchmarks.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{Units: s.w.nUnits.Load(), Commits: s.w.nCommits.Load()}
}

// write runs fn as one unit on the writer.
func (s *Store) write(ctx context.Context, fn func(tx *txStore) error) error {
	return s.w.do(ctx, fn)
}

// InTx runs fn in one write transaction, committed when fn returns nil and rolled back otherwise.
// fn runs on the writer goroutine, batched with other units: it must only use tx and compute. Reads
// through tx see the transaction's writes; a write through s instead of tx would deadlock.
func (s *Store) InTx(ctx context.Context, fn func(tx domain.Store) error) error {
	return s.write(ctx, func(tx *txStore) error { return fn(tx) })
}

// Ping checks that the database answers and the writer is running.
func (s *Store) Ping(ctx context.Context) error {
	s.w.mu.RLock()
	closed := s.w.closed
	s.w.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.readDB.PingContext(ctx)
}

// Close waits for every submitted write to finish, stops the writer and closes the connections.
// Later calls return ErrClosed (writes) or an error from database/sql (reads).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.w.close()
		s.closeErr = errors.Join(
			s.rp.close(),
			s.wc.close(),
			s.wc.conn.Close(),
			s.readDB.Close(),
			s.writeDB.Close(),
		)
	})
	return s.closeErr
}

// Clients.

// GetClient reads a client from the read pool; it runs on every token request, as one primary key
// lookup with a prepared statement.
func (s *Store) GetClient(ctx context.Context, id string) (domain.Client, error) {
	return s.r.GetClient(ctx, id)
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]domain.Client, error) {
	return s.r.ListClients(ctx)
}

// PutClient inserts or replaces a client by ID.
func (s *Store) PutClient(ctx context.Context, c domain.Client) error {
	return s.write(ctx, func(tx *txStore) error { return tx.PutClient(ctx, c) })
}

// DeleteClient deletes a client; a missing one is domain.ErrNotFound.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txStore) error { return tx.DeleteClient(ctx, id) })
}

// Users.

// GetUser reads a user by subject.
func (s *Store) GetUser(ctx context.Context, subject string) (domain.User, error) {
	return s.r.GetUser(ctx, subject)
}

// GetUserByEmail reads a user by email, case-insensitively.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (domain.User, error) {
	return s.r.GetUserByEmail(ctx, email)
}

// ListUsers returns every user, ordered by subject.
func (s *Store) ListUsers(ctx context.Context) ([]domain.User, error) { return s.r.ListUsers(ctx) }

// PutUser inserts or replaces a user by subject; an email another user has is domain.ErrAlreadyExists.
func (s *Store) PutUser(ctx context.Context, u domain.User) error {
	return s.write(ctx, func(tx *txStore) error { return tx.PutUser(ctx, u) })
}

// Devices.

// CreateDevice inserts a device; an existing ID is domain.ErrAlreadyExists, an unknown subject
// domain.ErrNotFound.
func (s *Store) CreateDevice(ctx context.Context, d domain.Device) error {
	return s.write(ctx, func(tx *txStore) error { return tx.CreateDevice(ctx, d) })
}

// GetDevice reads a device by ID.
func (s *Store) GetDevice(ctx context.Context, id string) (domain.Device, error) {
	return s.r.GetDevice(ctx, id)
}

// ListDevices returns the user's devices, revoked ones included, oldest first.
func (s *Store) ListDevices(ctx context.Context, subject string) ([]domain.Device, error) {
	return s.r.ListDevices(ctx, subject)
}

// CountActiveDevices counts the user's devices that are not revoked.
func (s *Store) CountActiveDevices(ctx context.Context, subject string) (int, error) {
	return s.r.CountActiveDevices(ctx, subject)
}

// RevokeDevice sets the device's RevokedAt unless it is already set.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *txStore) error { return tx.RevokeDevice(ctx, id, at) })
}

// CreateEnrollment inserts an enrollment; an existing code hash is domain.ErrAlreadyExists.
func (s *Store) CreateEnrollment(ctx context.Context, e domain.Enrollment) error {
	return s.write(ctx, func(tx *txStore) error { return tx.CreateEnrollment(ctx, e) })
}

// UpdateEnrollment loads an enrollment, applies fn and saves the result, in one write unit.
func (s *Store) UpdateEnrollment(ctx context.Context, codeHash []byte, fn func(*domain.Enrollment) error) (domain.Enrollment, error) {
	var out domain.Enrollment
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.UpdateEnrollment(ctx, codeHash, fn)
		return err
	})
	if err != nil {
		return domain.Enrollment{}, err
	}
	return out, nil
}

// Requests.

// CreateRequest inserts a request; an existing ID or auth_req_id hash is domain.ErrAlreadyExists.
func (s *Store) CreateRequest(ctx context.Context, r domain.Request) error {
	return s.write(ctx, func(tx *txStore) error { return tx.CreateRequest(ctx, r) })
}

// GetRequest reads a request by ID.
func (s *Store) GetRequest(ctx context.Context, id string) (domain.Request, error) {
	return s.r.GetRequest(ctx, id)
}

// GetRequestByAuthReqID reads a request by the hash of its auth_req_id. The token endpoint calls it
// on every poll: one lookup in a unique index, with a prepared statement, on the read pool.
func (s *Store) GetRequestByAuthReqID(ctx context.Context, authReqIDHash []byte) (domain.Request, error) {
	return s.r.GetRequestByAuthReqID(ctx, authReqIDHash)
}

// UpdateRequest loads a request, applies fn (a state transition) and saves the result, in one write
// unit: the writer runs one unit at a time, so two updates of a request never start from the same
// state. When fn fails nothing is saved and its error is returned.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*domain.Request) error) (domain.Request, error) {
	var out domain.Request
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.UpdateRequest(ctx, id, fn)
		return err
	})
	if err != nil {
		return domain.Request{}, err
	}
	return out, nil
}

// ListRequests returns requests matching the filter, newest first.
func (s *Store) ListRequests(ctx context.Context, f domain.RequestFilter) ([]domain.Request, error) {
	return s.r.ListRequests(ctx, f)
}

// CountRequests counts the user's pending unexpired requests at now, and those created since since.
func (s *Store) CountRequests(ctx context.Context, subject string, now, since time.Time) (pending, recent int, err error) {
	return s.r.CountRequests(ctx, subject, now, since)
}

// ListExpiredPending returns up to limit pending requests whose ExpiresAt is not after now, those
// that expired first first.
func (s *Store) ListExpiredPending(ctx context.Context, now time.Time, limit int) ([]domain.Request, error) {
	return s.r.ListExpiredPending(ctx, now, limit)
}

// Tokens.

// CreateToken inserts a token record; an existing ID or hash is domain.ErrAlreadyExists.
func (s *Store) CreateToken(ctx context.Context, t domain.Token) error {
	return s.write(ctx, func(tx *txStore) error { return tx.CreateToken(ctx, t) })
}

// GetToken reads a token record by ID (an access token's jti).
func (s *Store) GetToken(ctx context.Context, id string) (domain.Token, error) {
	return s.r.GetToken(ctx, id)
}

// GetTokenByHash reads a token record by the hash of its value (a refresh token).
func (s *Store) GetTokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	return s.r.GetTokenByHash(ctx, hash)
}

// UpdateToken loads a token record, applies fn and saves the result, in one write unit.
func (s *Store) UpdateToken(ctx context.Context, id string, fn func(*domain.Token) error) (domain.Token, error) {
	var out domain.Token
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.UpdateToken(ctx, id, fn)
		return err
	})
	if err != nil {
		return domain.Token{}, err
	}
	return out, nil
}

// RevokeTokenFamily revokes every unrevoked token of a refresh-token family. An empty family ID
// revokes nothing.
func (s *Store) RevokeTokenFamily(ctx context.Context, familyID string, at time.Time) error {
	return s.write(ctx, func(tx *txStore) error { return tx.RevokeTokenFamily(ctx, familyID, at) })
}

// UseNonce records a one-time value until expiresAt; a value recorded before whose expiry has not
// passed (by the wall clock) is domain.ErrAlreadyExists.
func (s *Store) UseNonce(ctx context.Context, key string, expiresAt time.Time) error {
	return s.write(ctx, func(tx *txStore) error { return tx.UseNonce(ctx, key, expiresAt) })
}

// purgeChunk is how many rows of each table one purge unit deletes. A purge after a long pause may
// find millions of rows; deleting them in chunks, one unit each, lets other writes in between
// instead of holding the writer for seconds.
const purgeChunk = 2000

// PurgeExpired deletes token records and nonces that expired before the given time, in chunks.
func (s *Store) PurgeExpired(ctx context.Context, before time.Time) error {
	for {
		var more bool
		err := s.write(ctx, func(tx *txStore) (err error) {
			more, err = tx.purgeExpiredChunk(ctx, before, purgeChunk)
			return err
		})
		if err != nil || !more {
			return err
		}
	}
}

// Keys.

// ListKeys returns every signing key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]domain.SigningKey, error) { return s.r.ListKeys(ctx) }

// PutKey inserts or replaces a signing key by ID.
func (s *Store) PutKey(ctx context.Context, k domain.SigningKey) error {
	return s.write(ctx, func(tx *txStore) error { return tx.PutKey(ctx, k) })
}

// Audit.

// AppendAudit appends an event; the store assigns its ID.
func (s *Store) AppendAudit(ctx context.Context, e domain.AuditEvent) error {
	return s.write(ctx, func(tx *txStore) error { return tx.AppendAudit(ctx, e) })
}

// ListAudit returns matching events, newest first. With AfterID set it returns the Limit events
// right after AfterID, so that paging forward never skips events.
func (s *Store) ListAudit(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error) {
	return s.r.ListAudit(ctx, f)
}

// Outbox.

// EnqueueOutbox inserts a pending message and returns its ID.
func (s *Store) EnqueueOutbox(ctx context.Context, m domain.OutboxMessage) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *txStore) (err error) {
		id, err = tx.EnqueueOutbox(ctx, m)
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// ClaimOutbox leases up to limit pending messages that are due at now and not leased, until
// leaseUntil, increments their Attempts in the same statement, and returns them (as updated) oldest
// due first. Claims are write units, so two never overlap.
func (s *Store) ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]domain.OutboxMessage, error) {
	var out []domain.OutboxMessage
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.ClaimOutbox(ctx, now, leaseUntil, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateOutbox loads a message, applies fn and saves the result, in one write unit.
func (s *Store) UpdateOutbox(ctx context.Context, id int64, fn func(*domain.OutboxMessage) error) (domain.OutboxMessage, error) {
	var out domain.OutboxMessage
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.UpdateOutbox(ctx, id, fn)
		return err
	})
	if err != nil {
		return domain.OutboxMessage{}, err
	}
	return out, nil
}

// ListOutbox returns messages in a status (all when empty), newest first, up to limit (0: 100).
func (s *Store) ListOutbox(ctx context.Context, status domain.OutboxStatus, limit int) ([]domain.OutboxMessage, error) {
	return s.r.ListOutbox(ctx, status, limit)
}

// Notifications.

// PutPushSubscription inserts or replaces the device's Web Push subscription. The device must exist
// and belong to the subscription's Subject, or it is domain.ErrNotFound.
func (s *Store) PutPushSubscription(ctx context.Context, sub domain.PushSubscription) error {
	return s.write(ctx, func(tx *txStore) error { return tx.PutPushSubscription(ctx, sub) })
}

// ListPushSubscriptions returns the user's subscriptions, oldest first.
func (s *Store) ListPushSubscriptions(ctx context.Context, subject string) ([]domain.PushSubscription, error) {
	return s.r.ListPushSubscriptions(ctx, subject)
}

// DeletePushSubscription removes the device's subscription; a missing one is not an error.
func (s *Store) DeletePushSubscription(ctx context.Context, deviceID string) error {
	return s.write(ctx, func(tx *txStore) error { return tx.DeletePushSubscription(ctx, deviceID) })
}

// Passkeys.

// CreatePasskey inserts a passkey; an existing ID is domain.ErrAlreadyExists, an unknown subject
// domain.ErrNotFound.
func (s *Store) CreatePasskey(ctx context.Context, p domain.Passkey) error {
	return s.write(ctx, func(tx *txStore) error { return tx.CreatePasskey(ctx, p) })
}

// ListPasskeys returns the user's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, subject string) ([]domain.Passkey, error) {
	return s.r.ListPasskeys(ctx, subject)
}

// UpdatePasskey loads a passkey, applies fn and saves the result, in one write unit. When fn fails
// nothing is saved and its error is returned.
func (s *Store) UpdatePasskey(ctx context.Context, id string, fn func(*domain.Passkey) error) (domain.Passkey, error) {
	var out domain.Passkey
	err := s.write(ctx, func(tx *txStore) (err error) {
		out, err = tx.UpdatePasskey(ctx, id, fn)
		return err
	})
	if err != nil {
		return domain.Passkey{}, err
	}
	return out, nil
}
