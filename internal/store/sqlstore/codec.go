package sqlstore

import (
	"database/sql"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Encoding of Go values into columns and back. See the package documentation for the conventions.

// encTime stores a time as unix microseconds, and the zero time as NULL.
func encTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// decTime reads what encTime stored. The result is in UTC.
func decTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// bound encodes a time used as a query bound. Unlike a stored value, the zero time is not NULL but
// the earliest time, as time.Time compares it: "created since the zero time" means all of them.
func bound(t time.Time) int64 { return t.UnixMicro() }

// normTime returns t as the store will return it: UTC, truncated to the microsecond. Update methods
// return their result through it, so that what they return equals what a later Get returns.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// encBytes stores an empty byte slice as NULL, so that optional unique columns (a token's hash) do not
// collide on the empty value.
func encBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// encJSON stores a JSON value as TEXT, byte for byte, and an empty one as NULL. TEXT rather than BLOB
// keeps the value readable and usable by SQLite's JSON functions.
func encJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// decBytes returns nil for an empty value, so nil and empty both come back as nil.
func decBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// encStrings stores a string list as a JSON array, and an empty list as NULL.
func encStrings(ss []string) (any, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	n := 2
	for _, s := range ss {
		if !plainJSONString(s) {
			b, err := json.Marshal(ss)
			if err != nil {
				return nil, err
			}
			return string(b), nil
		}
		n += len(s) + 3
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String(), nil
}

// plainJSONString reports whether s can be written between quotes as a JSON string without escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// decStrings reads what encStrings stored. Lists of plain strings, the common case (scopes,
// audiences), are split without the JSON decoder and share the memory of v: one allocation for the
// slice instead of one per element plus the decoder's.
func decStrings(v sql.NullString) ([]string, error) {
	if !v.Valid || v.String == "" {
		return nil, nil
	}
	if ss, ok := splitPlainJSONStrings(v.String); ok {
		return ss, nil
	}
	var ss []string
	if err := json.Unmarshal([]byte(v.String), &ss); err != nil {
		return nil, err
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// splitPlainJSONStrings parses a compact JSON array of strings without escapes, as encStrings writes
// it. It reports false for anything else, which the caller hands to the JSON decoder.
func splitPlainJSONStrings(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	if body == "" {
		return nil, true
	}
	ss := make([]string, 0, strings.Count(body, `","`)+1)
	for {
		if len(body) < 2 || body[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(body[1:], '"')
		if end < 0 {
			return nil, false
		}
		elem := body[1 : 1+end]
		if strings.IndexByte(elem, '\\') >= 0 {
			return nil, false
		}
		ss = append(ss, elem)
		body = body[end+2:]
		if body == "" {
			return ss, true
		}
		if body[0] != ',' {
			return nil, false
		}
		body = body[1:]
	}
}

// limitOr returns limit, or def when limit is not positive.
func limitOr(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}
