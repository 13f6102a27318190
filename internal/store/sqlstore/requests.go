package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

const requestCols = `id, auth_req_id_hash, client_id, client_name, subject, scope, audience, binding_message,
 authorization_details, acr_values, delivery_mode, notification_token, callback_auth_req_id, status, created_at, expires_at,
 interval_ns, receipt_device_id, receipt_decision, receipt_shown_sha256, receipt_signature,
 receipt_decided_at, decided_at, redeemed_at, verification_code, require_user_verification, reminded_at,
 receipt_reported, receipt_user_verified`

const (
	sqlCreateRequest = `INSERT INTO requests (` + requestCols + `)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlGetRequest          = `SELECT ` + requestCols + ` FROM requests WHERE id = ?`
	sqlGetRequestForUpdate = sqlGetRequest + lockMarker
	// The token endpoint's query, run on every poll: one lookup in the auth_req_id_hash index.
	sqlGetRequestByAuthReqID = `SELECT ` + requestCols + ` FROM requests WHERE auth_req_id_hash = ?`
	sqlSaveRequest           = `UPDATE requests SET auth_req_id_hash = ?, client_id = ?, client_name = ?,
 subject = ?, scope = ?, audience = ?, binding_message = ?, authorization_details = ?, acr_values = ?,
 delivery_mode = ?, notification_token = ?, callback_auth_req_id = ?, status = ?, created_at = ?, expires_at = ?, interval_ns = ?,
 receipt_device_id = ?, receipt_decision = ?, receipt_shown_sha256 = ?, receipt_signature = ?,
 receipt_decided_at = ?, decided_at = ?, redeemed_at = ?, verification_code = ?, require_user_verification = ?,
 reminded_at = ?, receipt_reported = ?, receipt_user_verified = ? WHERE id = ?`
	// Two scalar subqueries, each answered from its own index.
	sqlCountRequests = `SELECT
 (SELECT COUNT(*) FROM requests WHERE subject = ? AND status = ? AND expires_at > ?),
 (SELECT COUNT(*) FROM requests WHERE subject = ? AND created_at >= ?)`
	sqlListExpiredPending = `SELECT ` + requestCols + ` FROM requests
 WHERE status = ? AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`
)

// requestRow holds the scan targets of one requests row.
type requestRow struct {
	r                                 domain.Request
	scope, audience, acr              sql.NullString
	deliveryMode, status              string
	created, expires                  sql.NullInt64
	interval                          int64
	rcptDevice, rcptDecision, rcptSig sql.NullString
	rcptShown                         []byte
	rcptDecided, decided, redeemed    sql.NullInt64
	reminded                          sql.NullInt64
	rcptReported, rcptUserVerified    sql.NullBool
	dest                              []any
}

func newRequestRow() *requestRow {
	x := &requestRow{}
	x.dest = []any{&x.r.ID, &x.r.AuthReqIDHash, &x.r.ClientID, &x.r.ClientName, &x.r.Subject, &x.scope,
		&x.audience, &x.r.BindingMessage, (*[]byte)(&x.r.AuthorizationDetails), &x.acr, &x.deliveryMode,
		&x.r.NotificationToken, &x.r.CallbackAuthReqID, &x.status, &x.created, &x.expires, &x.interval, &x.rcptDevice,
		&x.rcptDecision, &x.rcptShown, &x.rcptSig, &x.rcptDecided, &x.decided, &x.redeemed, &x.r.VerificationCode,
		&x.r.RequireUserVerification, &x.reminded, &x.rcptReported, &x.rcptUserVerified}
	return x
}

// requestRows recycles scan targets: GetRequestByAuthReqID runs on every token poll.
var requestRows = sync.Pool{New: func() any { return newRequestRow() }}

// release clears the row, so that the pool keeps no request data alive, and returns it to the pool.
func (x *requestRow) release() {
	*x = requestRow{dest: x.dest} // dest points into x itself, so it stays valid
	requestRows.Put(x)
}

func (x *requestRow) request() (domain.Request, error) {
	r := x.r
	r.AuthReqIDHash = decBytes(r.AuthReqIDHash)
	r.AuthorizationDetails = decBytes(r.AuthorizationDetails)
	r.DeliveryMode = domain.DeliveryMode(x.deliveryMode)
	r.Status = domain.RequestStatus(x.status)
	r.CreatedAt, r.ExpiresAt = decTime(x.created), decTime(x.expires)
	r.Interval = time.Duration(x.interval)
	r.DecidedAt, r.RedeemedAt = decTime(x.decided), decTime(x.redeemed)
	r.RemindedAt = decTime(x.reminded)
	if x.rcptDecision.Valid {
		r.Receipt = &domain.Receipt{
			DeviceID:    x.rcptDevice.String,
			Decision:    domain.Decision(x.rcptDecision.String),
			ShownSHA256: decBytes(x.rcptShown),
			Signature:   x.rcptSig.String,
			DecidedAt:   decTime(x.rcptDecided),
			// NULL (a receipt stored before these flags existed) reads as false.
			Reported:     x.rcptReported.Bool,
			UserVerified: x.rcptUserVerified.Bool,
		}
	}
	var err error
	if r.Scope, err = decStrings(x.scope); err != nil {
		return domain.Request{}, err
	}
	if r.Audience, err = decStrings(x.audience); err != nil {
		return domain.Request{}, err
	}
	if r.ACRValues, err = decStrings(x.acr); err != nil {
		return domain.Request{}, err
	}
	return r, nil
}

// requestArgs are the values of every column but id, in requestCols order, for both insert and update.
func requestArgs(r *domain.Request) ([]any, error) {
	scope, err := encStrings(r.Scope)
	if err != nil {
		return nil, err
	}
	audience, err := encStrings(r.Audience)
	if err != nil {
		return nil, err
	}
	acr, err := encStrings(r.ACRValues)
	if err != nil {
		return nil, err
	}
	// Every receipt_* column is NULL when there is no receipt; receipt_decision tells which.
	var rcptDevice, rcptDecision, rcptShown, rcptSig, rcptDecided, rcptReported, rcptUserVerified any
	if rc := r.Receipt; rc != nil {
		rcptDevice, rcptDecision, rcptShown = rc.DeviceID, string(rc.Decision), encBytes(rc.ShownSHA256)
		rcptSig, rcptDecided = rc.Signature, encTime(rc.DecidedAt)
		rcptReported, rcptUserVerified = rc.Reported, rc.UserVerified
	}
	return []any{encBytes(r.AuthReqIDHash), r.ClientID, r.ClientName, r.Subject, scope, audience,
		r.BindingMessage, encJSON(r.AuthorizationDetails), acr, string(r.DeliveryMode), r.NotificationToken,
		r.CallbackAuthReqID, string(r.Status), encTime(r.CreatedAt), encTime(r.ExpiresAt), int64(r.Interval), rcptDevice,
		rcptDecision, rcptShown, rcptSig, rcptDecided, encTime(r.DecidedAt), encTime(r.RedeemedAt), r.VerificationCode,
		r.RequireUserVerification, encTime(r.RemindedAt), rcptReported, rcptUserVerified}, nil
}

func (o ops) CreateRequest(ctx context.Context, r domain.Request) error {
	args, err := requestArgs(&r)
	if err != nil {
		return err
	}
	_, err = o.x.exec(ctx, sqlCreateRequest, append([]any{r.ID}, args...)...)
	return err
}

func (o ops) getRequest(ctx context.Context, query string, key any) (domain.Request, error) {
	x := requestRows.Get().(*requestRow)
	defer x.release()
	if err := o.x.queryRow(ctx, query, []any{key}, x.dest...); err != nil {
		return domain.Request{}, err
	}
	return x.request()
}

func (o ops) GetRequest(ctx context.Context, id string) (domain.Request, error) {
	r, err := o.getRequest(ctx, sqlGetRequest, id)
	if err != nil {
		return domain.Request{}, missing(err, "request", id)
	}
	return r, nil
}

func (o ops) GetRequestByAuthReqID(ctx context.Context, authReqIDHash []byte) (domain.Request, error) {
	r, err := o.getRequest(ctx, sqlGetRequestByAuthReqID, authReqIDHash)
	if err != nil {
		return domain.Request{}, missing(err, "request with auth_req_id hash", authReqIDHash)
	}
	return r, nil
}

func (o ops) UpdateRequest(ctx context.Context, id string, fn func(*domain.Request) error) (domain.Request, error) {
	r, err := o.getRequest(ctx, sqlGetRequestForUpdate, id)
	if err != nil {
		return domain.Request{}, missing(err, "request", id)
	}
	if err := fn(&r); err != nil {
		return domain.Request{}, err
	}
	if r.ID != id {
		return domain.Request{}, errKeyChanged("request")
	}
	args, err := requestArgs(&r)
	if err != nil {
		return domain.Request{}, err
	}
	if _, err := o.x.exec(ctx, sqlSaveRequest, append(args, id)...); err != nil {
		return domain.Request{}, err
	}
	r.CreatedAt, r.ExpiresAt = normTime(r.CreatedAt), normTime(r.ExpiresAt)
	r.DecidedAt, r.RedeemedAt = normTime(r.DecidedAt), normTime(r.RedeemedAt)
	r.RemindedAt = normTime(r.RemindedAt)
	if r.Receipt != nil {
		rc := *r.Receipt // a copy: the caller's receipt is not ours to change
		rc.DecidedAt = normTime(rc.DecidedAt)
		r.Receipt = &rc
	}
	return r, nil
}

func (o ops) ListRequests(ctx context.Context, f domain.RequestFilter) ([]domain.Request, error) {
	// The query text depends only on which filters are set (16 shapes), so each shape is prepared
	// once and cached like the static queries.
	var q strings.Builder
	q.WriteString(`SELECT ` + requestCols + ` FROM requests WHERE 1 = 1`)
	args := make([]any, 0, 5)
	if f.Subject != "" {
		q.WriteString(` AND subject = ?`)
		args = append(args, f.Subject)
	}
	if f.ClientID != "" {
		q.WriteString(` AND client_id = ?`)
		args = append(args, f.ClientID)
	}
	if f.Status != "" {
		q.WriteString(` AND status = ?`)
		args = append(args, string(f.Status))
	}
	if !f.UnexpiredAt.IsZero() {
		q.WriteString(` AND expires_at > ?`)
		args = append(args, bound(f.UnexpiredAt))
	}
	q.WriteString(` ORDER BY created_at DESC, id DESC LIMIT ?`)
	args = append(args, limitOr(f.Limit, defaultLimit))
	return o.listRequests(ctx, q.String(), args...)
}

func (o ops) listRequests(ctx context.Context, query string, args ...any) ([]domain.Request, error) {
	rows, err := o.x.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Request
	x := newRequestRow()
	for rows.Next() {
		if err := rows.Scan(x.dest...); err != nil {
			return nil, err
		}
		r, err := x.request()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (o ops) CountRequests(ctx context.Context, subject string, now, since time.Time) (pending, recent int, err error) {
	err = o.x.queryRow(ctx, sqlCountRequests,
		[]any{subject, string(domain.StatusPending), bound(now), subject, bound(since)}, &pending, &recent)
	return pending, recent, err
}

func (o ops) ListExpiredPending(ctx context.Context, now time.Time, limit int) ([]domain.Request, error) {
	return o.listRequests(ctx, sqlListExpiredPending, string(domain.StatusPending), bound(now),
		limitOr(limit, defaultLimit))
}
