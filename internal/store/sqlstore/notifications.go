package sqlstore

import (
	"context"
	"database/sql"

	"github.com/countersign/countersign/internal/domain"
)

// Web Push subscriptions.

const pushCols = `device_id, subject, endpoint, p256dh, auth, created_at`

const (
	// One subscription per device: a new one replaces the old, whatever it was. The foreign key
	// (device_id, subject) checks that the device exists and belongs to the subject.
	sqlPutPushSubscription = `INSERT INTO push_subscriptions (` + pushCols + `) VALUES (?, ?, ?, ?, ?, ?)
 ON CONFLICT (device_id) DO UPDATE SET subject = excluded.subject, endpoint = excluded.endpoint,
 p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at`
	sqlListPushSubscriptions = `SELECT ` + pushCols + ` FROM push_subscriptions WHERE subject = ?
 ORDER BY created_at, device_id`
	sqlDeletePushSubscription = `DELETE FROM push_subscriptions WHERE device_id = ?`
)

func (o ops) PutPushSubscription(ctx context.Context, s domain.PushSubscription) error {
	_, err := o.x.exec(ctx, sqlPutPushSubscription, s.DeviceID, s.Subject, s.Endpoint, s.P256DH, s.Auth,
		encTime(s.CreatedAt))
	return err
}

func (o ops) ListPushSubscriptions(ctx context.Context, subject string) ([]domain.PushSubscription, error) {
	rows, err := o.x.query(ctx, sqlListPushSubscriptions, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.PushSubscription
	for rows.Next() {
		var (
			s       domain.PushSubscription
			created sql.NullInt64
		)
		if err := rows.Scan(&s.DeviceID, &s.Subject, &s.Endpoint, &s.P256DH, &s.Auth, &created); err != nil {
			return nil, err
		}
		s.CreatedAt = decTime(created)
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeletePushSubscription deletes nothing, without error, when the device has no subscription: the
// notifier calls it when a push service says a subscription is gone, possibly twice.
func (o ops) DeletePushSubscription(ctx context.Context, deviceID string) error {
	_, err := o.x.exec(ctx, sqlDeletePushSubscription, deviceID)
	return err
}

// Passkeys.

const passkeyCols = `id, subject, device_id, name, credential, created_at, last_used_at`

const (
	sqlCreatePasskey       = `INSERT INTO passkeys (` + passkeyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlListPasskeys        = `SELECT ` + passkeyCols + ` FROM passkeys WHERE subject = ? ORDER BY created_at, id`
	sqlGetPasskeyForUpdate = `SELECT ` + passkeyCols + ` FROM passkeys WHERE id = ?` + lockMarker
	sqlSavePasskey         = `UPDATE passkeys SET subject = ?, device_id = ?, name = ?, credential = ?, created_at = ?,
 last_used_at = ? WHERE id = ?`
)

type passkeyRow struct {
	p             domain.Passkey
	created, used sql.NullInt64
	dest          []any
}

func newPasskeyRow() *passkeyRow {
	x := &passkeyRow{}
	x.dest = []any{&x.p.ID, &x.p.Subject, &x.p.DeviceID, &x.p.Name, (*[]byte)(&x.p.Credential), &x.created, &x.used}
	return x
}

func (x *passkeyRow) passkey() domain.Passkey {
	p := x.p
	p.Credential = decBytes(p.Credential)
	p.CreatedAt, p.LastUsedAt = decTime(x.created), decTime(x.used)
	return p
}

// passkeyArgs are the values of every column but id, in passkeyCols order.
func passkeyArgs(p *domain.Passkey) []any {
	return []any{p.Subject, p.DeviceID, p.Name, encJSON(p.Credential), encTime(p.CreatedAt), encTime(p.LastUsedAt)}
}

func (o ops) CreatePasskey(ctx context.Context, p domain.Passkey) error {
	_, err := o.x.exec(ctx, sqlCreatePasskey, append([]any{p.ID}, passkeyArgs(&p)...)...)
	return err
}

func (o ops) ListPasskeys(ctx context.Context, subject string) ([]domain.Passkey, error) {
	rows, err := o.x.query(ctx, sqlListPasskeys, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Passkey
	x := newPasskeyRow()
	for rows.Next() {
		if err := rows.Scan(x.dest...); err != nil {
			return nil, err
		}
		out = append(out, x.passkey())
	}
	return out, rows.Err()
}

func (o ops) UpdatePasskey(ctx context.Context, id string, fn func(*domain.Passkey) error) (domain.Passkey, error) {
	x := newPasskeyRow()
	if err := o.x.queryRow(ctx, sqlGetPasskeyForUpdate, []any{id}, x.dest...); err != nil {
		return domain.Passkey{}, missing(err, "passkey", id)
	}
	p := x.passkey()
	if err := fn(&p); err != nil {
		return domain.Passkey{}, err
	}
	if p.ID != id {
		return domain.Passkey{}, errKeyChanged("passkey")
	}
	if _, err := o.x.exec(ctx, sqlSavePasskey, append(passkeyArgs(&p), id)...); err != nil {
		return domain.Passkey{}, err
	}
	p.CreatedAt, p.LastUsedAt = normTime(p.CreatedAt), normTime(p.LastUsedAt)
	return p, nil
}
