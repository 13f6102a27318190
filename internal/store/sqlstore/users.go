package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

const userCols = `subject, email, name, phone, channels, user_code_hash, created_at, updated_at`

const (
	sqlGetUser        = `SELECT ` + userCols + ` FROM users WHERE subject = ?`
	sqlGetUserByEmail = `SELECT ` + userCols + ` FROM users WHERE email_lower = ?`
	sqlListUsers      = `SELECT ` + userCols + ` FROM users ORDER BY subject`
	sqlPutUser        = `INSERT INTO users (subject, email, email_lower, name, phone, channels, user_code_hash,
 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (subject) DO UPDATE SET email = excluded.email, email_lower = excluded.email_lower,
 name = excluded.name, phone = excluded.phone, channels = excluded.channels,
 user_code_hash = excluded.user_code_hash, created_at = excluded.created_at, updated_at = excluded.updated_at`
)

// emailKey is the form of an email that uniqueness and lookups use, NULL for no email. Go folds the
// case, not the database, so that every engine agrees (SQLite's lower() only folds ASCII).
func emailKey(email string) any {
	if email == "" {
		return nil
	}
	return strings.ToLower(email)
}

type userRow struct {
	u                domain.User
	channels         sql.NullString
	created, updated sql.NullInt64
	dest             []any
}

func newUserRow() *userRow {
	r := &userRow{}
	r.dest = []any{&r.u.Subject, &r.u.Email, &r.u.Name, &r.u.Phone, &r.channels, &r.u.UserCodeHash, &r.created, &r.updated}
	return r
}

func (r *userRow) user() (domain.User, error) {
	u := r.u
	u.CreatedAt, u.UpdatedAt = decTime(r.created), decTime(r.updated)
	var err error
	if u.Channels, err = decStrings(r.channels); err != nil {
		return domain.User{}, err
	}
	return u, nil
}

func (o ops) GetUser(ctx context.Context, subject string) (domain.User, error) {
	r := newUserRow()
	if err := o.x.queryRow(ctx, sqlGetUser, []any{subject}, r.dest...); err != nil {
		return domain.User{}, missing(err, "user", subject)
	}
	return r.user()
}

func (o ops) GetUserByEmail(ctx context.Context, email string) (domain.User, error) {
	key := emailKey(email)
	if key == nil {
		return domain.User{}, missing(sql.ErrNoRows, "user with email", email)
	}
	r := newUserRow()
	if err := o.x.queryRow(ctx, sqlGetUserByEmail, []any{key}, r.dest...); err != nil {
		return domain.User{}, missing(err, "user with email", email)
	}
	return r.user()
}

func (o ops) ListUsers(ctx context.Context) ([]domain.User, error) {
	rows, err := o.x.query(ctx, sqlListUsers)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.User
	r := newUserRow()
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return nil, err
		}
		u, err := r.user()
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (o ops) PutUser(ctx context.Context, u domain.User) error {
	channels, err := encStrings(u.Channels)
	if err != nil {
		return err
	}
	_, err = o.x.exec(ctx, sqlPutUser, u.Subject, u.Email, emailKey(u.Email), u.Name, u.Phone, channels,
		u.UserCodeHash, encTime(u.CreatedAt), encTime(u.UpdatedAt))
	return err
}

// Devices and enrollments.

const deviceCols = `id, subject, name, kind, public_key, created_at, revoked_at`

const (
	sqlCreateDevice       = `INSERT INTO devices (` + deviceCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlGetDevice          = `SELECT ` + deviceCols + ` FROM devices WHERE id = ?`
	sqlListDevices        = `SELECT ` + deviceCols + ` FROM devices WHERE subject = ? ORDER BY created_at, id`
	sqlCountActiveDevices = `SELECT COUNT(*) FROM devices WHERE subject = ? AND revoked_at IS NULL`
	// COALESCE keeps the first revocation time; the row still counts as affected, so zero affected
	// rows means the device does not exist.
	sqlRevokeDevice = `UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`

	enrollmentCols      = `code_hash, subject, created_at, expires_at, used_at, device_id`
	sqlCreateEnrollment = `INSERT INTO enrollments (` + enrollmentCols + `) VALUES (?, ?, ?, ?, ?, ?)`
	sqlGetEnrollment    = `SELECT ` + enrollmentCols + ` FROM enrollments WHERE code_hash = ?` + lockMarker
	sqlSaveEnrollment   = `UPDATE enrollments SET subject = ?, created_at = ?, expires_at = ?, used_at = ?,
 device_id = ? WHERE code_hash = ?`
)

type deviceRow struct {
	d                domain.Device
	created, revoked sql.NullInt64
	dest             []any
}

func newDeviceRow() *deviceRow {
	r := &deviceRow{}
	r.dest = []any{&r.d.ID, &r.d.Subject, &r.d.Name, &r.d.Kind, (*[]byte)(&r.d.PublicKey), &r.created, &r.revoked}
	return r
}

func (r *deviceRow) device() domain.Device {
	d := r.d
	d.PublicKey = decBytes(d.PublicKey)
	d.CreatedAt, d.RevokedAt = decTime(r.created), decTime(r.revoked)
	return d
}

func (o ops) CreateDevice(ctx context.Context, d domain.Device) error {
	_, err := o.x.exec(ctx, sqlCreateDevice, d.ID, d.Subject, d.Name, d.Kind, encJSON(d.PublicKey),
		encTime(d.CreatedAt), encTime(d.RevokedAt))
	return err
}

func (o ops) GetDevice(ctx context.Context, id string) (domain.Device, error) {
	r := newDeviceRow()
	if err := o.x.queryRow(ctx, sqlGetDevice, []any{id}, r.dest...); err != nil {
		return domain.Device{}, missing(err, "device", id)
	}
	return r.device(), nil
}

func (o ops) ListDevices(ctx context.Context, subject string) ([]domain.Device, error) {
	rows, err := o.x.query(ctx, sqlListDevices, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Device
	r := newDeviceRow()
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return nil, err
		}
		out = append(out, r.device())
	}
	return out, rows.Err()
}

func (o ops) CountActiveDevices(ctx context.Context, subject string) (int, error) {
	var n int
	err := o.x.queryRow(ctx, sqlCountActiveDevices, []any{subject}, &n)
	return n, err
}

func (o ops) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	res, err := o.x.exec(ctx, sqlRevokeDevice, encTime(at), id)
	if err != nil {
		return err
	}
	return mustAffect(res, "device", id)
}

func (o ops) CreateEnrollment(ctx context.Context, e domain.Enrollment) error {
	_, err := o.x.exec(ctx, sqlCreateEnrollment, encBytes(e.CodeHash), e.Subject, encTime(e.CreatedAt),
		encTime(e.ExpiresAt), encTime(e.UsedAt), e.DeviceID)
	return err
}

func (o ops) UpdateEnrollment(ctx context.Context, codeHash []byte, fn func(*domain.Enrollment) error) (domain.Enrollment, error) {
	var (
		e                      domain.Enrollment
		created, expires, used sql.NullInt64
	)
	err := o.x.queryRow(ctx, sqlGetEnrollment, []any{codeHash},
		&e.CodeHash, &e.Subject, &created, &expires, &used, &e.DeviceID)
	if err != nil {
		return domain.Enrollment{}, missing(err, "enrollment", codeHash)
	}
	e.CreatedAt, e.ExpiresAt, e.UsedAt = decTime(created), decTime(expires), decTime(used)
	if err := fn(&e); err != nil {
		return domain.Enrollment{}, err
	}
	if string(e.CodeHash) != string(codeHash) {
		return domain.Enrollment{}, errKeyChanged("enrollment")
	}
	if _, err := o.x.exec(ctx, sqlSaveEnrollment, e.Subject, encTime(e.CreatedAt), encTime(e.ExpiresAt),
		encTime(e.UsedAt), e.DeviceID, codeHash); err != nil {
		return domain.Enrollment{}, err
	}
	e.CreatedAt, e.ExpiresAt, e.UsedAt = normTime(e.CreatedAt), normTime(e.ExpiresAt), normTime(e.UsedAt)
	return e, nil
}
