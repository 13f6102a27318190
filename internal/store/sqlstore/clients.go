package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

const clientCols = `id, name, grant_types, secret_hash, auth_method, jwks, jwks_uri, delivery_mode, notification_endpoint,
 request_signing_alg, user_code_parameter, authorization_details_types, scopes, audiences,
 id_token_signing_alg, refresh_tokens, access_token_ttl_ns, expired_as_access_denied, created_at, updated_at`

const (
	sqlGetClient   = `SELECT ` + clientCols + ` FROM clients WHERE id = ?`
	sqlListClients = `SELECT ` + clientCols + ` FROM clients ORDER BY id`
	sqlPutClient   = `INSERT INTO clients (` + clientCols + `)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (id) DO UPDATE SET name = excluded.name, grant_types = excluded.grant_types, secret_hash = excluded.secret_hash,
 auth_method = excluded.auth_method, jwks = excluded.jwks, jwks_uri = excluded.jwks_uri,
 delivery_mode = excluded.delivery_mode, notification_endpoint = excluded.notification_endpoint,
 request_signing_alg = excluded.request_signing_alg, user_code_parameter = excluded.user_code_parameter,
 authorization_details_types = excluded.authorization_details_types, scopes = excluded.scopes,
 audiences = excluded.audiences, id_token_signing_alg = excluded.id_token_signing_alg,
 refresh_tokens = excluded.refresh_tokens, access_token_ttl_ns = excluded.access_token_ttl_ns,
 expired_as_access_denied = excluded.expired_as_access_denied, created_at = excluded.created_at,
 updated_at = excluded.updated_at`
	sqlDeleteClient = `DELETE FROM clients WHERE id = ?`
)

// clientRow holds the scan targets of one clients row, so that scanning allocates them once.
type clientRow struct {
	c                                domain.Client
	deliveryMode                     string
	grants, types, scopes, audiences sql.NullString
	ttl                              int64
	created, updated                 sql.NullInt64
	dest                             []any
}

func newClientRow() *clientRow {
	r := &clientRow{}
	r.dest = []any{&r.c.ID, &r.c.Name, &r.grants, &r.c.SecretHash, &r.c.AuthMethod, (*[]byte)(&r.c.JWKS), &r.c.JWKSURI,
		&r.deliveryMode, &r.c.NotificationEndpoint, &r.c.RequestSigningAlg, &r.c.UserCodeParameter,
		&r.types, &r.scopes, &r.audiences, &r.c.IDTokenSigningAlg, &r.c.RefreshTokens, &r.ttl,
		&r.c.ExpiredAsAccessDenied, &r.created, &r.updated}
	return r
}

// clientRows recycles scan targets: GetClient runs on every token request.
var clientRows = sync.Pool{New: func() any { return newClientRow() }}

// release clears the row, so that the pool keeps no client data alive, and returns it to the pool.
func (r *clientRow) release() {
	*r = clientRow{dest: r.dest} // dest points into r itself, so it stays valid
	clientRows.Put(r)
}

func (r *clientRow) client() (domain.Client, error) {
	c := r.c
	c.SecretHash = decBytes(c.SecretHash)
	c.JWKS = decBytes(c.JWKS)
	c.DeliveryMode = domain.DeliveryMode(r.deliveryMode)
	c.AccessTokenTTL = time.Duration(r.ttl)
	c.CreatedAt, c.UpdatedAt = decTime(r.created), decTime(r.updated)
	var err error
	if c.GrantTypes, err = decStrings(r.grants); err != nil {
		return domain.Client{}, err
	}
	if c.AuthorizationDetailsTypes, err = decStrings(r.types); err != nil {
		return domain.Client{}, err
	}
	if c.Scopes, err = decStrings(r.scopes); err != nil {
		return domain.Client{}, err
	}
	if c.Audiences, err = decStrings(r.audiences); err != nil {
		return domain.Client{}, err
	}
	return c, nil
}

func (o ops) GetClient(ctx context.Context, id string) (domain.Client, error) {
	r := clientRows.Get().(*clientRow)
	defer r.release()
	if err := o.x.queryRow(ctx, sqlGetClient, []any{id}, r.dest...); err != nil {
		return domain.Client{}, missing(err, "client", id)
	}
	return r.client()
}

func (o ops) ListClients(ctx context.Context) ([]domain.Client, error) {
	rows, err := o.x.query(ctx, sqlListClients)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Client
	r := newClientRow()
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return nil, err
		}
		c, err := r.client()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (o ops) PutClient(ctx context.Context, c domain.Client) error {
	grants, err := encStrings(c.GrantTypes)
	if err != nil {
		return err
	}
	types, err := encStrings(c.AuthorizationDetailsTypes)
	if err != nil {
		return err
	}
	scopes, err := encStrings(c.Scopes)
	if err != nil {
		return err
	}
	audiences, err := encStrings(c.Audiences)
	if err != nil {
		return err
	}
	_, err = o.x.exec(ctx, sqlPutClient, c.ID, c.Name, grants, encBytes(c.SecretHash), c.AuthMethod, encJSON(c.JWKS),
		c.JWKSURI, string(c.DeliveryMode), c.NotificationEndpoint, c.RequestSigningAlg, c.UserCodeParameter,
		types, scopes, audiences, c.IDTokenSigningAlg, c.RefreshTokens, int64(c.AccessTokenTTL),
		c.ExpiredAsAccessDenied, encTime(c.CreatedAt), encTime(c.UpdatedAt))
	return err
}

func (o ops) DeleteClient(ctx context.Context, id string) error {
	res, err := o.x.exec(ctx, sqlDeleteClient, id)
	if err != nil {
		return err
	}
	return mustAffect(res, "client", id)
}
