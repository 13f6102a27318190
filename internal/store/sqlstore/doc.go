// Package sqlstore implements domain.Store on SQL databases with one set of queries.
//
// Today the only dialect is SQLite (OpenSQLite), through the pure-Go driver modernc.org/sqlite, so the
// binary builds with CGO_ENABLED=0. The queries are written once, with ? placeholders and portable SQL
// (INSERT ... ON CONFLICT ... DO UPDATE, RETURNING, scalar subqueries), and pass through a dialect that
// rewrites them once per prepared statement. A PostgreSQL dialect (pgx) will rebind placeholders to
// $1..$n and turn the row-lock markers into FOR UPDATE [SKIP LOCKED]; see dialect.go. Each dialect has
// its own embedded migrations under migrations/<dialect>/.
//
// # Storage conventions
//
// Times are INTEGER unix microseconds in UTC; the zero time.Time is NULL. Values therefore come back
// in UTC, truncated to the microsecond. Durations are INTEGER nanoseconds, which round-trip exactly.
// Hashes and private keys are BLOBs. JSON values (authorization_details, JWKS, device keys, audit
// details, outbox payloads) are TEXT stored byte for byte, NULL when empty. String lists (scopes,
// audiences, ...) are JSON arrays in TEXT, NULL when empty, so nil and empty lists both come back nil.
// Booleans are INTEGER 0 or 1. A foreign key violation (a device, enrollment, request or passkey for
// a user that does not exist, a push subscription for a device that does not exist or is not the
// subscription's Subject's) is domain.ErrNotFound; a unique violation is domain.ErrAlreadyExists.
//
// # Concurrency: a read pool and one group-committing writer
//
// SQLite allows one writer at a time, and a durable commit (synchronous=FULL) waits for an fsync, a few
// hundred microseconds even on a fast disk, so committing each write on its own caps a server at a few
// thousand writes per second however many goroutines try. The Store therefore has two pools:
//
//   - a read pool of several query_only connections, used by every read outside InTx;
//   - one write connection, owned by a single writer goroutine.
//
// Every write method outside InTx, and every InTx call, is one unit of work. Callers hand units to the
// writer and block. The writer takes whatever units are waiting (up to 128), opens one transaction
// (BEGIN IMMEDIATE), runs each unit inside its own SAVEPOINT so that a failing unit rolls back alone,
// commits once, and only then reports success to every caller in the batch. If the commit fails, every
// unit of the batch fails. Under load the cost of one fsync is shared by the whole batch, which turns
// a few thousand durable commits per second into tens of thousands of durable writes per second.
//
// A unit's function runs on the writer goroutine, so it must not block: it may only call the store it
// is given and compute. In particular, code inside InTx must write through the tx Store it receives;
// a write through the outer Store from inside fn waits for the writer that is running fn, forever.
package sqlstore
