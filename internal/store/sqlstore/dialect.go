package sqlstore

import (
	"strconv"
	"strings"
)

// Row-lock markers. A query that loads a row it is about to change ends with lockMarker; the claim of
// outbox messages ends its inner SELECT with skipLockedMarker. SQLite needs no row locks (its writer
// holds the database lock for the whole transaction) and reads the markers as comments; PostgreSQL
// turns them into FOR UPDATE and FOR UPDATE SKIP LOCKED, so that replicas sharing a database serialize
// on the row instead of both succeeding from the same state.
const (
	lockMarker       = " /*lock*/"
	skipLockedMarker = " /*skip-locked*/"
)

// dialect holds what differs between database engines. Everything else (the query text, the Go
// mapping of rows to entities) is shared.
type dialect struct {
	name string
	// rebind rewrites a query written with ? placeholders and lock markers into the engine's own
	// syntax. It runs once per prepared statement, never per call.
	rebind func(query string) string
	// mapErr turns driver errors that mean something to the domain (unique and foreign key
	// violations) into domain errors, wrapping the original. Other errors pass through unchanged.
	mapErr func(err error) error
}

// rebindQuestion keeps ? placeholders, as SQLite wants them.
func rebindQuestion(query string) string { return query }

// rebindDollar numbers ? placeholders $1..$n and replaces the lock markers, for PostgreSQL. A ? inside
// a quoted string, a quoted identifier or a comment is left alone.
func rebindDollar(query string) string {
	query = strings.ReplaceAll(query, skipLockedMarker, " FOR UPDATE SKIP LOCKED")
	query = strings.ReplaceAll(query, lockMarker, " FOR UPDATE")
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end])
			i += end - 1
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+4])
			i += end + 3
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
