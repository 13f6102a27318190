package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Precision is the time precision the suite requires: stored times come back equal once truncated to
// it.
const Precision = time.Microsecond

var timeType = reflect.TypeFor[time.Time]()

// normalize returns a copy of v as a conforming backend may return it: times in UTC truncated to
// Precision, empty slices (bytes, JSON, string lists) as nil.
func normalize(v reflect.Value) reflect.Value {
	switch {
	case v.Type() == timeType:
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return reflect.Zero(timeType)
		}
		return reflect.ValueOf(tm.Truncate(Precision).UTC())
	case v.Kind() == reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			out.Field(i).Set(normalize(v.Field(i)))
		}
		return out
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(normalize(v.Elem()))
		return p
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(normalize(v.Index(i)))
		}
		return out
	}
	return v
}

// diff lists the differences between want and got (already normalized), one "path: got X, want Y"
// line each.
func diff(path string, want, got reflect.Value, out *[]string) {
	switch {
	case want.Type() == timeType:
		w, g := want.Interface().(time.Time), got.Interface().(time.Time)
		if !w.Equal(g) {
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, fmtTime(g), fmtTime(w)))
		}
	case want.Kind() == reflect.Struct:
		for i := range want.NumField() {
			diff(path+"."+want.Type().Field(i).Name, want.Field(i), got.Field(i), out)
		}
	case want.Kind() == reflect.Pointer:
		switch {
		case want.IsNil() && got.IsNil():
		case want.IsNil() || got.IsNil():
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, fmtValue(got), fmtValue(want)))
		default:
			diff(path, want.Elem(), got.Elem(), out)
		}
	case want.Kind() == reflect.Slice && want.Type().Elem().Kind() != reflect.Uint8:
		if want.Len() != got.Len() {
			*out = append(*out, fmt.Sprintf("%s: got %d elements %s, want %d %s", path, got.Len(), fmtValue(got), want.Len(), fmtValue(want)))
			return
		}
		for i := range want.Len() {
			diff(fmt.Sprintf("%s[%d]", path, i), want.Index(i), got.Index(i), out)
		}
	default:
		if !reflect.DeepEqual(want.Interface(), got.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, fmtValue(got), fmtValue(want)))
		}
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	return t.Format(time.RFC3339Nano)
}

func fmtValue(v reflect.Value) string {
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
		if v.IsNil() {
			return "nil"
		}
		return fmt.Sprintf("%q", v.Bytes())
	}
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return "nil"
	}
	return fmt.Sprintf("%+v", v.Interface())
}

// nonUTC lists the non-zero times in v that are not in UTC.
func nonUTC(path string, v reflect.Value, out *[]string) {
	switch {
	case v.Type() == timeType:
		if tm := v.Interface().(time.Time); !tm.IsZero() && tm.Location() != time.UTC {
			*out = append(*out, fmt.Sprintf("%s: time %s is in %s, want UTC", path, fmtTime(tm), tm.Location()))
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			nonUTC(path+"."+v.Type().Field(i).Name, v.Field(i), out)
		}
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			nonUTC(path, v.Elem(), out)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			nonUTC(fmt.Sprintf("%s[%d]", path, i), v.Index(i), out)
		}
	}
}

// same reports, as a test error, every field in which got differs from want once both are
// normalized, and every time in got that is not in UTC. It reports whether they were the same.
func same[T any](t *testing.T, what string, want, got T) bool {
	t.Helper()
	var problems []string
	nonUTC(what, reflect.ValueOf(got), &problems)
	w, g := normalize(reflect.ValueOf(want)), normalize(reflect.ValueOf(got))
	diff(what, w, g, &problems)
	if len(problems) > 0 {
		t.Errorf("%s differs from what was stored:\n\t%s", what, strings.Join(problems, "\n\t"))
		return false
	}
	return true
}

// isErr fails the test unless err matches target (errors.Is).
func isErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// ok stops the test on an unexpected error.
func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// idsOf lists the IDs of entities, to compare sets and orders.
func idsOf[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

// sameIDs fails the test unless got lists exactly want, in order.
func sameIDs(t *testing.T, what string, want, got []string) {
	t.Helper()
	if !slices.Equal(want, got) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// sameSet fails the test unless got lists exactly want, in any order.
func sameSet(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := slices.Clone(want), slices.Clone(got)
	slices.Sort(w)
	slices.Sort(g)
	if !slices.Equal(w, g) {
		t.Errorf("%s: got %q, want %q (in any order)", what, got, want)
	}
}

// sha returns the SHA-256 of s, the way secrets and codes are stored.
func sha(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// errorsIs is errors.Is, for conditions written inline.
func errorsIs(err, target error) bool { return errors.Is(err, target) }
