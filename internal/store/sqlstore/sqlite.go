package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLiteOptions tunes OpenSQLite. The zero value is the durable default.
type SQLiteOptions struct {
	// Synchronous is SQLite's synchronous setting for the write connection: "full" (the default)
	// fsyncs every commit, so an acknowledged write survives a power loss; "normal" fsyncs only at WAL
	// checkpoints, so the last commits before a power loss (not a process crash) may be lost, in
	// exchange for cheaper commits.
	Synchronous string
	// ReadConns is the size of the read pool; zero means twice GOMAXPROCS, at least 4.
	ReadConns int
}

// busyTimeoutMillis is how long a connection waits for a lock held by another connection (another
// process's writer, a checkpoint) before failing with SQLITE_BUSY. Group commit keeps our own
// transactions short, so only a long operation in another process should ever come near it.
const busyTimeoutMillis = 10000

var sqliteDialect = &dialect{
	name:   "sqlite",
	rebind: rebindQuestion,
	mapErr: mapSQLiteErr,
}

// mapSQLiteErr maps constraint violations to domain errors. The SQLite driver reports extended
// result codes, which tell a unique violation from a foreign key or NOT NULL one.
func mapSQLiteErr(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", domain.ErrAlreadyExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// Foreign keys point at users (by subject) and, for push subscriptions, at the device
			// with its owner: what was referred to does not exist. SQLite does not say which key.
			return fmt.Errorf("%w: no such user or device: %w", domain.ErrNotFound, err)
		}
	}
	return err
}

// OpenSQLite opens (creating it if needed) the SQLite database file at path, brings its schema up to
// date, and starts the writer. The directory must exist. A new file is created with mode 0600: it
// holds hashes of every credential and the server's private signing keys.
//
// Several processes may open the same file at once (the CLI while the server runs); each has its own
// writer, and SQLite's file lock makes their transactions take turns.
func OpenSQLite(ctx context.Context, path string, opts SQLiteOptions) (*Store, error) {
	syncMode, err := sqliteSynchronous(opts.Synchronous)
	if err != nil {
		return nil, err
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlstore: %q is not a database file path", path)
	}
	path, err = filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if err := createPrivateFile(path); err != nil {
		return nil, err
	}
	readConns := opts.ReadConns
	if readConns <= 0 {
		readConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	ms, err := loadMigrations("migrations/sqlite")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}

	// The write connection sets the file-level settings (WAL is persistent) and the per-connection
	// ones that matter for writing. Pragmas are applied by the driver on connect, busy_timeout first.
	writeDB, err := sql.Open("sqlite", sqliteDSN(path,
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis),
		"journal_mode(WAL)",
		"foreign_keys(1)",
		"synchronous("+syncMode+")",
		// Each unit runs in a savepoint, whose undo log (the statement journal) is a temporary
		// file by default: a write system call for every page a unit first touches. In memory,
		// it costs nothing but the copy.
		"temp_store(MEMORY)",
		"mmap_size(268435456)",
	))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	// One connection, kept forever: the writer owns it.
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxLifetime(0)
	writeDB.SetConnMaxIdleTime(0)
	var conn *sql.Conn
	err = retryBusy(ctx, func() error {
		c, err := writeDB.Conn(ctx)
		if err != nil {
			return err
		}
		if err := migrate(ctx, c, sqliteDialect, ms); err != nil {
			_ = c.Close()
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		_ = writeDB.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}

	// Readers are query_only, so that a write routed to the read pool by mistake fails at once
	// instead of racing the writer.
	readDB, err := sql.Open("sqlite", sqliteDSN(path,
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis),
		"query_only(1)",
		// With writes going on, every read transaction finds its page cache stale and rereads pages:
		// through the memory map that is a copy, not a pread system call each.
		"mmap_size(268435456)",
	))
	if err != nil {
		_ = conn.Close()
		_ = writeDB.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	readDB.SetMaxOpenConns(readConns)
	readDB.SetMaxIdleConns(readConns)
	readDB.SetConnMaxLifetime(0)
	readDB.SetConnMaxIdleTime(0)

	return newStore(sqliteDialect, readDB, writeDB, conn), nil
}

// retryBusy runs fn again while it fails with SQLITE_BUSY, for up to the busy timeout. SQLite
// reports BUSY at once, without the busy handler, where waiting could deadlock; two processes
// opening a new file at the same moment, both switching it to WAL, is such a case.
func retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(busyTimeoutMillis * time.Millisecond)
	delay := time.Millisecond
	for {
		err := fn()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// sqliteSynchronous validates SQLiteOptions.Synchronous.
func sqliteSynchronous(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "full":
		return "FULL", nil
	case "normal":
		return "NORMAL", nil
	}
	return "", fmt.Errorf("sqlstore: synchronous must be \"full\" or \"normal\", not %q", s)
}

// createPrivateFile creates the database file with mode 0600 unless it exists, so that SQLite (which
// creates files with 0644 and the -wal and -shm files with the database's own mode) never makes the
// data world-readable.
func createPrivateFile(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("sqlstore: directory %s does not exist; create it before opening the database", dir)
	case err != nil:
		return fmt.Errorf("sqlstore: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("sqlstore: %s is not a directory", dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	return f.Close()
}

// sqliteDSN builds a file: URI with pragmas for the modernc driver. The path is escaped so that a ?,
// # or % in a directory name cannot be read as URI syntax.
func sqliteDSN(path string, pragmas ...string) string {
	var b strings.Builder
	b.WriteString("file:")
	b.WriteString(strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(path)))
	for i, p := range pragmas {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString("_pragma=")
		b.WriteString(p)
	}
	return b.String()
}
