package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/countersign/countersign/internal/domain"
)

// errTxFinished is returned when a function keeps the tx Store it was given and uses it after its
// transaction ended.
var errTxFinished = errors.New("sqlstore: transaction store used after its transaction ended")

// txStore is the domain.Store handed to a unit's function: every method, reads included, runs on the
// write connection inside the unit's savepoint, so it sees the transaction's own writes. It lives on
// the writer goroutine for the duration of one unit.
type txStore struct {
	ops
	wc       *writeConn
	finished atomic.Bool // set when the unit ends; checked on every statement
	depth    int         // nesting of InTx calls, for savepoint names
}

var _ domain.Store = (*txStore)(nil)

func newTxStore(wc *writeConn) *txStore {
	t := &txStore{wc: wc}
	t.ops = ops{x: t}
	return t
}

func (t *txStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.finished.Load() {
		return nil, errTxFinished
	}
	return t.wc.exec(ctx, query, args...)
}

func (t *txStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if t.finished.Load() {
		return nil, errTxFinished
	}
	return t.wc.query(ctx, query, args...)
}

func (t *txStore) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	if t.finished.Load() {
		return errTxFinished
	}
	return t.wc.queryRow(ctx, query, args, dest...)
}

// InTx runs fn in the current transaction, inside a nested savepoint: if fn fails, its own writes
// are undone and its error is returned; the enclosing function decides whether the whole
// transaction fails.
func (t *txStore) InTx(ctx context.Context, fn func(tx domain.Store) error) (err error) {
	t.depth++
	defer func() { t.depth-- }()
	name := "nested_" + strconv.Itoa(t.depth)
	if _, err := t.exec(ctx, "SAVEPOINT "+name); err != nil {
		return err
	}
	if err := fn(t); err != nil {
		if _, rbErr := t.exec(ctx, "ROLLBACK TO SAVEPOINT "+name); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		if _, relErr := t.exec(ctx, "RELEASE SAVEPOINT "+name); relErr != nil {
			return errors.Join(err, relErr)
		}
		return err
	}
	_, err = t.exec(ctx, "RELEASE SAVEPOINT "+name)
	return err
}

// Ping reports whether the transaction is still usable.
func (t *txStore) Ping(context.Context) error {
	if t.finished.Load() {
		return errTxFinished
	}
	return nil
}

// Close is not allowed inside a transaction.
func (t *txStore) Close() error {
	return errors.New("sqlstore: Close called on a transaction's Store")
}
