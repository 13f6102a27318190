package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationsFS holds the schema of every dialect, one directory each (migrations/sqlite, later
// migrations/postgres). Files are named NNNN_description.sql and applied in order, once.
//
//go:embed migrations
var migrationsFS embed.FS

// migration is one schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads a dialect's migrations, ordered by version, and checks that versions are
// unique and start at 1 without gaps, so that a misnamed file fails every test instead of being
// skipped in production.
func loadMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		text, err := fs.ReadFile(migrationsFS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: version, name: name, sql: string(text)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

const (
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`
	sqlMaxMigration    = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`
	sqlInsertMigration = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
)

// migrate applies the migrations the database lacks, on the write connection, before the writer
// starts.
//
// Another process may open the same file at the same moment (the CLI while the server runs). The
// changes run inside BEGIN IMMEDIATE, which takes SQLite's write lock before reading the applied
// versions: the second process waits (busy_timeout) and then finds the work done. A database that is
// already up to date is recognized without taking the write lock at all.
func migrate(ctx context.Context, conn *sql.Conn, d *dialect, ms []migration) (err error) {
	latest := len(ms)
	var have int
	if err := conn.QueryRowContext(ctx, d.rebind(sqlMaxMigration)).Scan(&have); err == nil && have == latest {
		return nil
	}

	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("lock database for migrations: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, sqlCreateMigrations); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := conn.QueryRowContext(ctx, d.rebind(sqlMaxMigration)).Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > latest {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade countersign", have, latest)
	}
	for _, m := range ms[have:] {
		if _, err := conn.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if _, err := conn.ExecContext(ctx, d.rebind(sqlInsertMigration), m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}
