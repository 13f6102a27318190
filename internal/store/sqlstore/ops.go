package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/countersign/countersign/internal/domain"
)

// ops implements the entity methods of domain.Store on an execer. The Store uses it on the read pool
// for reads and, through the writer, on the write connection for writes; txStore uses it on the write
// connection for both. Methods that change rows assume they run inside a write transaction.
type ops struct {
	x execer
}

// defaultLimit is the domain's default page size for list methods.
const defaultLimit = 100

// missing turns "no row" into domain.ErrNotFound naming what was looked for.
func missing(err error, what string, key any) error {
	if errors.Is(err, sql.ErrNoRows) {
		if b, ok := key.([]byte); ok {
			return fmt.Errorf("%w: %s %x", domain.ErrNotFound, what, b)
		}
		return fmt.Errorf("%w: %s %q", domain.ErrNotFound, what, key)
	}
	return err
}

// mustAffect returns ErrNotFound when a statement that targets one row by key changed none.
func mustAffect(res sql.Result, what string, key any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return missing(sql.ErrNoRows, what, key)
	}
	return nil
}

// errKeyChanged is returned when an update function changes the key of what it updates.
func errKeyChanged(what string) error {
	return fmt.Errorf("sqlstore: the update function changed the %s's key", what)
}
