package sqlstore

import (
	"database/sql"
	"slices"
	"testing"
)

func TestStringListsRoundTrip(t *testing.T) {
	for _, ss := range [][]string{
		{"openid"},
		{"openid", "offline_access", "trade:write"},
		{""},
		{"", ""},
		{`quo"te`, `back\slash`, "new\nline", "tab\t", "ünï", "<html>&"},
		{"a,b", `","`, "[", "]"},
	} {
		enc, err := encStrings(ss)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decStrings(sql.NullString{String: enc.(string), Valid: true})
		if err != nil {
			t.Fatalf("decode %q: %v", enc, err)
		}
		if !slices.Equal(got, ss) {
			t.Errorf("%q encoded as %s decodes to %q", ss, enc, got)
		}
	}
	if enc, _ := encStrings(nil); enc != nil {
		t.Errorf("an empty list is stored as %v, want NULL", enc)
	}
	for _, stored := range []sql.NullString{{}, {String: "[]", Valid: true}, {String: "", Valid: true}} {
		if got, err := decStrings(stored); got != nil || err != nil {
			t.Errorf("decStrings(%+v) = %q, %v; want nil", stored, got, err)
		}
	}
	// What other writers (the JSON encoder, a person with the sqlite3 shell) may store.
	got, err := decStrings(sql.NullString{String: `[ "a" , "b\u0021" ]`, Valid: true})
	if err != nil || !slices.Equal(got, []string{"a", "b!"}) {
		t.Errorf("decoding spaced and escaped JSON: %q, %v", got, err)
	}
	if _, err := decStrings(sql.NullString{String: `not json`, Valid: true}); err == nil {
		t.Error("decoding garbage succeeded")
	}
}

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE x = ? AND y = ?`:                           `SELECT a FROM t WHERE x = $1 AND y = $2`,
		`SELECT '?' FROM t WHERE "col?" = ? -- why?` + "\n" + `AND z = ?`: `SELECT '?' FROM t WHERE "col?" = $1 -- why?` + "\n" + `AND z = $2`,
		`SELECT a FROM t /* ? */ WHERE x = ? AND y <> ''`:                 `SELECT a FROM t /* ? */ WHERE x = $1 AND y <> ''`,
		`SELECT a FROM t WHERE id = ?` + lockMarker:                       `SELECT a FROM t WHERE id = $1 FOR UPDATE`,
		`SELECT id FROM t LIMIT ?` + skipLockedMarker:                     `SELECT id FROM t LIMIT $1 FOR UPDATE SKIP LOCKED`,
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	// Every shared query rebinds to as many $n as it has ?, so the PostgreSQL dialect can reuse them.
	for _, q := range []string{sqlGetRequestByAuthReqID, sqlSaveRequest, sqlCreateRequest, sqlClaimOutbox, sqlUseNonce, sqlCountRequests, sqlPutClient} {
		if got := rebindDollar(q); countByte(got, '?') != 0 {
			t.Errorf("rebindDollar left a placeholder in %q", got)
		}
	}
}

func countByte(s string, c byte) int {
	n := 0
	for i := range len(s) {
		if s[i] == c {
			n++
		}
	}
	return n
}
