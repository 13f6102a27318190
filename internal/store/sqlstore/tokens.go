package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

const tokenCols = `id, kind, hash, client_id, subject, scope, audience, authorization_details, request_id,
 family_id, issued_at, expires_at, used_at, revoked_at`

const (
	sqlCreateToken = `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlGetToken    = `SELECT ` + tokenCols + ` FROM tokens WHERE id = ?`
	// The refresh grant's lookup: one probe of the hash index.
	sqlGetTokenByHash    = `SELECT ` + tokenCols + ` FROM tokens WHERE hash = ?`
	sqlGetTokenForUpdate = sqlGetToken + lockMarker
	sqlSaveToken         = `UPDATE tokens SET kind = ?, hash = ?, client_id = ?, subject = ?, scope = ?, audience = ?,
 authorization_details = ?, request_id = ?, family_id = ?, issued_at = ?, expires_at = ?, used_at = ?,
 revoked_at = ? WHERE id = ?`
	// family_id <> '' repeats the partial index's condition so that the planner may use it.
	sqlRevokeTokenFamily = `UPDATE tokens SET revoked_at = ?
 WHERE family_id = ? AND family_id <> '' AND revoked_at IS NULL`

	// A nonce may be recorded again once its previous use has expired: the upsert only overwrites an
	// expired row, so "no row changed" means the nonce is live.
	sqlUseNonce = `INSERT INTO nonces (id, expires_at) VALUES (?, ?)
 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
 WHERE nonces.expires_at IS NULL OR nonces.expires_at <= ?`

	sqlPurgeTokens      = `DELETE FROM tokens WHERE expires_at < ?`
	sqlPurgeNonces      = `DELETE FROM nonces WHERE expires_at < ?`
	sqlPurgeTokensChunk = `DELETE FROM tokens WHERE id IN (SELECT id FROM tokens WHERE expires_at < ? LIMIT ?)`
	sqlPurgeNoncesChunk = `DELETE FROM nonces WHERE id IN (SELECT id FROM nonces WHERE expires_at < ? LIMIT ?)`
)

type tokenRow struct {
	t                              domain.Token
	kind                           string
	scope, audience                sql.NullString
	issued, expires, used, revoked sql.NullInt64
	dest                           []any
}

func newTokenRow() *tokenRow {
	x := &tokenRow{}
	x.dest = []any{&x.t.ID, &x.kind, &x.t.Hash, &x.t.ClientID, &x.t.Subject, &x.scope, &x.audience,
		(*[]byte)(&x.t.AuthorizationDetails), &x.t.RequestID, &x.t.FamilyID, &x.issued, &x.expires, &x.used,
		&x.revoked}
	return x
}

func (x *tokenRow) token() (domain.Token, error) {
	t := x.t
	t.Kind = domain.TokenKind(x.kind)
	t.Hash = decBytes(t.Hash)
	t.AuthorizationDetails = decBytes(t.AuthorizationDetails)
	t.IssuedAt, t.ExpiresAt = decTime(x.issued), decTime(x.expires)
	t.UsedAt, t.RevokedAt = decTime(x.used), decTime(x.revoked)
	var err error
	if t.Scope, err = decStrings(x.scope); err != nil {
		return domain.Token{}, err
	}
	if t.Audience, err = decStrings(x.audience); err != nil {
		return domain.Token{}, err
	}
	return t, nil
}

// tokenArgs are the values of every column but id, in tokenCols order.
func tokenArgs(t *domain.Token) ([]any, error) {
	scope, err := encStrings(t.Scope)
	if err != nil {
		return nil, err
	}
	audience, err := encStrings(t.Audience)
	if err != nil {
		return nil, err
	}
	return []any{string(t.Kind), encBytes(t.Hash), t.ClientID, t.Subject, scope, audience,
		encJSON(t.AuthorizationDetails), t.RequestID, t.FamilyID, encTime(t.IssuedAt), encTime(t.ExpiresAt),
		encTime(t.UsedAt), encTime(t.RevokedAt)}, nil
}

func (o ops) CreateToken(ctx context.Context, t domain.Token) error {
	args, err := tokenArgs(&t)
	if err != nil {
		return err
	}
	_, err = o.x.exec(ctx, sqlCreateToken, append([]any{t.ID}, args...)...)
	return err
}

func (o ops) getToken(ctx context.Context, query string, key any) (domain.Token, error) {
	x := newTokenRow()
	if err := o.x.queryRow(ctx, query, []any{key}, x.dest...); err != nil {
		return domain.Token{}, err
	}
	return x.token()
}

func (o ops) GetToken(ctx context.Context, id string) (domain.Token, error) {
	t, err := o.getToken(ctx, sqlGetToken, id)
	if err != nil {
		return domain.Token{}, missing(err, "token", id)
	}
	return t, nil
}

func (o ops) GetTokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	if len(hash) == 0 {
		// Access tokens have no hash; an empty hash must not find one of them.
		return domain.Token{}, missing(sql.ErrNoRows, "token with hash", hash)
	}
	t, err := o.getToken(ctx, sqlGetTokenByHash, hash)
	if err != nil {
		return domain.Token{}, missing(err, "token with hash", hash)
	}
	return t, nil
}

func (o ops) UpdateToken(ctx context.Context, id string, fn func(*domain.Token) error) (domain.Token, error) {
	t, err := o.getToken(ctx, sqlGetTokenForUpdate, id)
	if err != nil {
		return domain.Token{}, missing(err, "token", id)
	}
	if err := fn(&t); err != nil {
		return domain.Token{}, err
	}
	if t.ID != id {
		return domain.Token{}, errKeyChanged("token")
	}
	args, err := tokenArgs(&t)
	if err != nil {
		return domain.Token{}, err
	}
	if _, err := o.x.exec(ctx, sqlSaveToken, append(args, id)...); err != nil {
		return domain.Token{}, err
	}
	t.IssuedAt, t.ExpiresAt = normTime(t.IssuedAt), normTime(t.ExpiresAt)
	t.UsedAt, t.RevokedAt = normTime(t.UsedAt), normTime(t.RevokedAt)
	return t, nil
}

func (o ops) RevokeTokenFamily(ctx context.Context, familyID string, at time.Time) error {
	if familyID == "" {
		return nil // tokens outside any family are not one family
	}
	_, err := o.x.exec(ctx, sqlRevokeTokenFamily, encTime(at), familyID)
	return err
}

// UseNonce judges expiry by the wall clock: the interface passes no "now". A nonce recorded with an
// expiry that has already passed is stored but does not block a later use.
func (o ops) UseNonce(ctx context.Context, key string, expiresAt time.Time) error {
	res, err := o.x.exec(ctx, sqlUseNonce, key, encTime(expiresAt), bound(time.Now()))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: nonce %q was already used", domain.ErrAlreadyExists, key)
	}
	return nil
}

func (o ops) PurgeExpired(ctx context.Context, before time.Time) error {
	if _, err := o.x.exec(ctx, sqlPurgeTokens, bound(before)); err != nil {
		return err
	}
	_, err := o.x.exec(ctx, sqlPurgeNonces, bound(before))
	return err
}

// purgeExpiredChunk deletes up to limit expired tokens and up to limit expired nonces, and reports
// whether it deleted a full chunk of either, that is whether there may be more.
func (o ops) purgeExpiredChunk(ctx context.Context, before time.Time, limit int) (more bool, err error) {
	for _, q := range []string{sqlPurgeTokensChunk, sqlPurgeNoncesChunk} {
		res, err := o.x.exec(ctx, q, bound(before), limit)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		more = more || n >= int64(limit)
	}
	return more, nil
}

// Signing keys.

const keyCols = `id, algorithm, key_use, status, private_key, created_at, activated_at, retired_at`

const (
	sqlListKeys = `SELECT ` + keyCols + ` FROM signing_keys ORDER BY created_at, id`
	sqlPutKey   = `INSERT INTO signing_keys (` + keyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (id) DO UPDATE SET algorithm = excluded.algorithm, key_use = excluded.key_use,
 status = excluded.status, private_key = excluded.private_key, created_at = excluded.created_at,
 activated_at = excluded.activated_at, retired_at = excluded.retired_at`
)

func (o ops) ListKeys(ctx context.Context) ([]domain.SigningKey, error) {
	rows, err := o.x.query(ctx, sqlListKeys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.SigningKey
	for rows.Next() {
		var (
			k                           domain.SigningKey
			status                      string
			created, activated, retired sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Use, &status, &k.PrivateKey, &created, &activated, &retired); err != nil {
			return nil, err
		}
		k.Status = domain.KeyStatus(status)
		k.PrivateKey = decBytes(k.PrivateKey)
		k.CreatedAt, k.ActivatedAt, k.RetiredAt = decTime(created), decTime(activated), decTime(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (o ops) PutKey(ctx context.Context, k domain.SigningKey) error {
	_, err := o.x.exec(ctx, sqlPutKey, k.ID, k.Algorithm, k.Use, string(k.Status), encBytes(k.PrivateKey),
		encTime(k.CreatedAt), encTime(k.ActivatedAt), encTime(k.RetiredAt))
	return err
}
