package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

const auditCols = `id, occurred_at, event_type, subject, client_id, request_id, device_id, detail`

const sqlAppendAudit = `INSERT INTO audit_events (occurred_at, event_type, subject, client_id, request_id,
 device_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`

func (o ops) AppendAudit(ctx context.Context, e domain.AuditEvent) error {
	_, err := o.x.exec(ctx, sqlAppendAudit, encTime(e.Time), e.Type, e.Subject, e.ClientID, e.RequestID,
		e.DeviceID, encJSON(e.Detail))
	return err
}

// ListAudit returns matching events, newest first.
//
// Without AfterID it returns the newest Limit events. With AfterID it returns the Limit events that
// come right after AfterID (still newest first), so that a reader paging forward with
// AfterID = the greatest ID it has seen never skips an event, however many arrived in between.
func (o ops) ListAudit(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error) {
	var q strings.Builder
	q.WriteString(`SELECT ` + auditCols + ` FROM audit_events WHERE 1 = 1`)
	args := make([]any, 0, 6)
	for _, c := range []struct{ col, val string }{
		{"subject", f.Subject}, {"client_id", f.ClientID}, {"request_id", f.RequestID}, {"event_type", f.Type},
	} {
		if c.val != "" {
			q.WriteString(` AND ` + c.col + ` = ?`)
			args = append(args, c.val)
		}
	}
	forward := f.AfterID > 0
	if forward {
		q.WriteString(` AND id > ? ORDER BY id LIMIT ?`)
		args = append(args, f.AfterID)
	} else {
		q.WriteString(` ORDER BY id DESC LIMIT ?`)
	}
	args = append(args, limitOr(f.Limit, defaultLimit))

	rows, err := o.x.query(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.AuditEvent
	for rows.Next() {
		var (
			e  domain.AuditEvent
			at sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.Subject, &e.ClientID, &e.RequestID, &e.DeviceID, (*[]byte)(&e.Detail)); err != nil {
			return nil, err
		}
		e.Time = decTime(at)
		e.Detail = decBytes(e.Detail)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if forward {
		slices.Reverse(out)
	}
	return out, nil
}

// Outbox.

const outboxCols = `id, kind, request_id, target, payload, status, attempts, next_attempt_at, lease_until,
 last_error, created_at, delivered_at`

const (
	sqlEnqueueOutbox = `INSERT INTO outbox (kind, request_id, target, payload, status, attempts, next_attempt_at,
 lease_until, last_error, created_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	// The claim is one statement: pick the due, unleased messages, lease them and count the attempt
	// about to be made, so that an attempt is recorded before it is made (a worker that crashes
	// mid-delivery still used one up). RETURNING gives the rows as updated. SQLite runs it under the
	// write lock; PostgreSQL locks the picked rows and skips rows another claim is taking.
	sqlClaimOutbox = `UPDATE outbox SET lease_until = ?, attempts = attempts + 1 WHERE id IN (
 SELECT id FROM outbox
 WHERE status = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?) AND (lease_until IS NULL OR lease_until <= ?)
 ORDER BY next_attempt_at, id LIMIT ?` + skipLockedMarker + `)
 RETURNING ` + outboxCols
	sqlGetOutboxForUpdate = `SELECT ` + outboxCols + ` FROM outbox WHERE id = ?` + lockMarker
	sqlSaveOutbox         = `UPDATE outbox SET kind = ?, request_id = ?, target = ?, payload = ?, status = ?,
 attempts = ?, next_attempt_at = ?, lease_until = ?, last_error = ?, created_at = ?, delivered_at = ? WHERE id = ?`
	sqlListOutbox         = `SELECT ` + outboxCols + ` FROM outbox ORDER BY id DESC LIMIT ?`
	sqlListOutboxByStatus = `SELECT ` + outboxCols + ` FROM outbox WHERE status = ? ORDER BY id DESC LIMIT ?`
)

type outboxRow struct {
	m                               domain.OutboxMessage
	status                          string
	next, lease, created, delivered sql.NullInt64
	dest                            []any
}

func newOutboxRow() *outboxRow {
	x := &outboxRow{}
	x.dest = []any{&x.m.ID, &x.m.Kind, &x.m.RequestID, &x.m.Target, (*[]byte)(&x.m.Payload), &x.status,
		&x.m.Attempts, &x.next, &x.lease, &x.m.LastError, &x.created, &x.delivered}
	return x
}

func (x *outboxRow) message() domain.OutboxMessage {
	m := x.m
	m.Payload = decBytes(m.Payload)
	m.Status = domain.OutboxStatus(x.status)
	m.NextAttemptAt, m.LeaseUntil = decTime(x.next), decTime(x.lease)
	m.CreatedAt, m.DeliveredAt = decTime(x.created), decTime(x.delivered)
	return m
}

// outboxArgs are the values of every column but id, in outboxCols order.
func outboxArgs(m *domain.OutboxMessage) []any {
	return []any{m.Kind, m.RequestID, m.Target, encJSON(m.Payload), string(m.Status), m.Attempts,
		encTime(m.NextAttemptAt), encTime(m.LeaseUntil), m.LastError, encTime(m.CreatedAt), encTime(m.DeliveredAt)}
}

func (o ops) EnqueueOutbox(ctx context.Context, m domain.OutboxMessage) (int64, error) {
	m.Status = domain.OutboxPending
	var id int64
	if err := o.x.queryRow(ctx, sqlEnqueueOutbox, outboxArgs(&m), &id); err != nil {
		return 0, err
	}
	return id, nil
}

func (o ops) ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]domain.OutboxMessage, error) {
	out, err := o.scanOutbox(o.x.query(ctx, sqlClaimOutbox, encTime(leaseUntil), string(domain.OutboxPending),
		bound(now), bound(now), limitOr(limit, defaultLimit)))
	if err != nil {
		return nil, err
	}
	// RETURNING gives rows in no particular order; hand them out oldest due first.
	slices.SortFunc(out, func(a, b domain.OutboxMessage) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (o ops) UpdateOutbox(ctx context.Context, id int64, fn func(*domain.OutboxMessage) error) (domain.OutboxMessage, error) {
	x := newOutboxRow()
	if err := o.x.queryRow(ctx, sqlGetOutboxForUpdate, []any{id}, x.dest...); err != nil {
		return domain.OutboxMessage{}, missing(err, "outbox message", id)
	}
	m := x.message()
	if err := fn(&m); err != nil {
		return domain.OutboxMessage{}, err
	}
	if m.ID != id {
		return domain.OutboxMessage{}, errKeyChanged("outbox message")
	}
	if _, err := o.x.exec(ctx, sqlSaveOutbox, append(outboxArgs(&m), id)...); err != nil {
		return domain.OutboxMessage{}, err
	}
	m.NextAttemptAt, m.LeaseUntil = normTime(m.NextAttemptAt), normTime(m.LeaseUntil)
	m.CreatedAt, m.DeliveredAt = normTime(m.CreatedAt), normTime(m.DeliveredAt)
	return m, nil
}

func (o ops) ListOutbox(ctx context.Context, status domain.OutboxStatus, limit int) ([]domain.OutboxMessage, error) {
	limit = limitOr(limit, defaultLimit)
	if status == "" {
		return o.scanOutbox(o.x.query(ctx, sqlListOutbox, limit))
	}
	return o.scanOutbox(o.x.query(ctx, sqlListOutboxByStatus, string(status), limit))
}

func (o ops) scanOutbox(rows *sql.Rows, err error) ([]domain.OutboxMessage, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.OutboxMessage
	x := newOutboxRow()
	for rows.Next() {
		if err := rows.Scan(x.dest...); err != nil {
			return nil, err
		}
		out = append(out, x.message())
	}
	return out, rows.Err()
}
