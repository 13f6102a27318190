package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// execer runs queries somewhere: on the read pool, or on the write connection inside the current
// transaction. The entity code (ops) is written once against it. Queries are the shared ? text; each
// execer prepares them once, through the dialect, and reuses the prepared statement.
type execer interface {
	exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	// query returns rows; the caller closes them before running another statement.
	query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	// queryRow scans the first row into dest; no row is errNoRow.
	queryRow(ctx context.Context, query string, args []any, dest ...any) error
}

// errNoRow is what queryRow returns when nothing matched. Callers wrap it into a domain.ErrNotFound
// that names what was missing.
var errNoRow = sql.ErrNoRows

// readPool runs reads on a pool of query_only connections. Prepared statements are cached per query
// text; database/sql prepares each one lazily on every connection that runs it.
type readPool struct {
	db    *sql.DB
	d     *dialect
	mu    sync.Mutex // serializes preparing; lookups go through the lock-free map
	stmts sync.Map   // query text -> *sql.Stmt
}

func (p *readPool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := p.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := p.db.PrepareContext(ctx, p.d.rebind(query))
	if err != nil {
		return nil, err
	}
	p.stmts.Store(query, st)
	return st, nil
}

func (p *readPool) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(ctx, args...)
	return res, p.d.mapErr(err)
}

func (p *readPool) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, p.d.mapErr(err)
}

func (p *readPool) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return err
	}
	return p.d.mapErr(st.QueryRowContext(ctx, args...).Scan(dest...))
}

func (p *readPool) close() error {
	var errs []error
	p.stmts.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

// writeConn is the single write connection. Only the writer goroutine uses it (and OpenSQLite before
// the writer starts), so its statement cache needs no lock.
//
// Statements run with a background context whatever the caller's: cancelling a statement interrupts
// SQLite, and an interrupted write may roll back the whole transaction, which here holds the work of
// every caller in the batch. A caller's context is checked before its unit starts instead.
type writeConn struct {
	conn  *sql.Conn
	d     *dialect
	stmts map[string]*sql.Stmt
}

func (c *writeConn) stmt(query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.conn.PrepareContext(context.Background(), c.d.rebind(query))
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *writeConn) exec(_ context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(query)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(context.Background(), args...)
	return res, c.d.mapErr(err)
}

func (c *writeConn) query(_ context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(context.Background(), args...)
	return rows, c.d.mapErr(err)
}

func (c *writeConn) queryRow(_ context.Context, query string, args []any, dest ...any) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	return c.d.mapErr(st.QueryRowContext(context.Background(), args...).Scan(dest...))
}

func (c *writeConn) close() error {
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(errs...)
}
