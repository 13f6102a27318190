package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder walks the YAML node tree next to the Go value it fills, instead of handing the tree
// to yaml's own decoder, because it does several things at once that yaml cannot: strict keys with
// their line numbers (yaml's KnownFields is lost as soon as a custom unmarshaler is involved),
// ${NAME} expansion in scalars, *_file secrets, and YAML-to-JSON conversion for json.RawMessage
// fields (jwks, schema). Leaves (strings, numbers, booleans, Duration) are still decoded by yaml.

// envRef matches ${NAME}, and $${NAME} (the escaped, literal form).
var envRef = regexp.MustCompile(`\$?\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces each ${NAME} in s by the environment variable NAME and each $${NAME} by the
// literal ${NAME}. It returns the names of the variables that are not set.
func expandEnv(s string) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		name := m[2 : len(m)-1]
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	return out, missing
}

// maxNodes bounds the work done on one file, so that a few aliases cannot expand into billions of
// nodes.
const maxNodes = 100_000

var (
	rawJSONType     = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// parseError is one problem found while decoding.
type parseError struct {
	line int
	path string
	msg  string
}

// parseErrors is every problem found while decoding one file, one per line of Error, each formatted
// as "file:line: path: message".
type parseErrors struct {
	file string
	errs []parseError
}

func (e *parseErrors) Error() string {
	var b strings.Builder
	for i, pe := range e.errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case e.file != "" && pe.line > 0:
			fmt.Fprintf(&b, "%s:%d: ", e.file, pe.line)
		case e.file != "":
			fmt.Fprintf(&b, "%s: ", e.file)
		case pe.line > 0:
			fmt.Fprintf(&b, "line %d: ", pe.line)
		}
		if pe.path != "" {
			b.WriteString(pe.path)
			b.WriteString(": ")
		}
		b.WriteString(pe.msg)
	}
	return b.String()
}

type decoder struct {
	baseDir string
	budget  int
	errs    []parseError
}

func newDecoder(baseDir string) *decoder {
	return &decoder{baseDir: baseDir, budget: maxNodes}
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return &parseErrors{errs: d.errs}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, parseError{line: line, path: path, msg: fmt.Sprintf(format, args...)})
}

// document decodes one YAML document into out, a pointer. Empty input decodes to the zero value.
func (d *decoder) document(data []byte, out any) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if strings.Contains(msg, "did not find expected ',' or") && bytes.Contains(data, []byte("${")) {
				msg += ` (inside {...} or [...], quote ${NAME} references: "${NAME}")`
			}
			d.errs = append(d.errs, parseError{msg: msg})
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.errorf(&extra, "", "the file must hold a single YAML document")
		return
	}
	if len(doc.Content) == 1 {
		d.value(doc.Content[0], reflect.ValueOf(out).Elem(), "")
	}
}

// spend counts one visited node and reports whether the budget is exhausted.
func (d *decoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget == 0 {
		d.errorf(n, "", "the document is too large (aliases expand to more than %d nodes)", maxNodes)
	}
	return d.budget <= 0
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// value decodes n into v, which must be settable.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if d.spend(n) {
		return
	}
	switch {
	case v.Type() == rawJSONType:
		if isNull(n) {
			v.SetBytes(nil)
			return
		}
		var b bytes.Buffer
		if d.json(&b, n, path) {
			v.SetBytes(b.Bytes())
		}
		return
	case isNull(n):
		v.SetZero()
		return
	case reflect.PointerTo(v.Type()).Implements(unmarshalerType):
		d.custom(n, v, path)
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for _, p := range d.pairs(n, path) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.value(p.val, e, mapPath(path, p.key.Value))
			m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path, true); ok {
			v.SetString(s.Value)
		}
	default:
		s, ok := d.scalar(n, path, true)
		if !ok {
			return
		}
		if err := s.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "expected %s, got %q", kindName(v.Kind()), s.Value)
		}
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return k.String()
	}
}

// custom decodes a value whose type implements yaml.Unmarshaler (Duration).
func (d *decoder) custom(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode {
		s, ok := d.scalar(n, path, true)
		if !ok {
			return
		}
		n = s
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				d.errorf(n, path, "%s", msg)
			}
			return
		}
		d.errorf(n, path, "%v", err)
	}
}

// scalar checks that n is a scalar and returns it with ${NAME} references expanded. When expansion
// changes a scalar without an explicit tag, the copy's tag is cleared so that yaml resolves it again
// from the new text: "${MAX}" may become an integer. With retype false (inside jwks and schema,
// where JSON types come from the YAML), quoted scalars stay strings; with retype true (Go fields,
// whose type decides), quoting does not matter, so a quoted '${MAX}' can be an integer inside a
// flow mapping, where YAML would read the braces of an unquoted ${MAX} as structure.
func (d *decoder) scalar(n *yaml.Node, path string, retype bool) (*yaml.Node, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a single value, got %s", describe(n))
		return nil, false
	}
	val, missing := expandEnv(n.Value)
	for _, name := range missing {
		d.errorf(n, path, "environment variable %s is not set", name)
	}
	if len(missing) > 0 {
		return nil, false
	}
	if val == n.Value {
		return n, true
	}
	c := *n
	c.Value = val
	if n.Style&yaml.TaggedStyle == 0 && (retype || n.Style&quoted == 0) {
		c.Tag, c.Style = "", 0
	}
	return &c, true
}

const quoted = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// pair is one key and its value in a mapping.
type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries, applying YAML merge keys ("<<: *base"): explicit keys win over
// merged ones, and earlier merged mappings win over later ones. Duplicate keys are errors.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, path)...)
			continue
		}
		if k = deref(k); k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain strings, got %s", describe(k))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, path, "key %q is set twice (first on line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

// merge returns the entries a merge key's value brings in.
func (d *decoder) merge(v *yaml.Node, path string) []pair {
	v = deref(v)
	if d.spend(v) {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range v.Content {
			if item = deref(item); item.Kind != yaml.MappingNode {
				d.errorf(item, path, "<< must merge mappings, got %s", describe(item))
				continue
			}
			for _, p := range d.pairs(item, path) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	default:
		d.errorf(v, path, "<< must merge a mapping, got %s", describe(v))
		return nil
	}
}

// field is a struct field as the config file names it.
type field struct {
	index int
	key   string
	// file: the key may instead be given as key+"_file", naming a file that holds the value.
	file bool
}

func structFields(t reflect.Type) []field {
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		fields = append(fields, field{index: i, key: key, file: f.Tag.Get("config") == "file"})
	}
	return fields
}

// structure decodes a mapping into a struct, rejecting unknown keys.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	byKey := make(map[string]field, len(fields))
	for _, f := range fields {
		byKey[f.key] = f
	}
	set := map[string]bool{}
	var files []pair
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		if f, ok := byKey[key]; ok {
			set[key] = true
			d.value(p.val, v.Field(f.index), joinPath(path, key))
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok && byKey[base].file {
			files = append(files, p)
			continue
		}
		msg := fmt.Sprintf("unknown key %q", key)
		if s := suggest(key, fields); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.errorf(p.key, path, "%s", msg)
	}
	for _, p := range files {
		fileKey := p.key.Value
		f := byKey[strings.TrimSuffix(fileKey, "_file")]
		fpath := joinPath(path, fileKey)
		if set[f.key] {
			d.errorf(p.key, fpath, "set either %s or %s, not both", f.key, fileKey)
			continue
		}
		val := deref(p.val)
		if isNull(val) {
			continue
		}
		s, ok := d.scalar(val, fpath, true)
		if !ok {
			continue
		}
		secret, err := readSecret(d.baseDir, s.Value)
		if err != nil {
			d.errorf(val, fpath, "%v", err)
			continue
		}
		v.Field(f.index).SetString(secret)
	}
}

// readSecret reads a secret file (relative to baseDir) and trims one trailing newline.
func readSecret(baseDir, name string) (string, error) {
	if name == "" {
		return "", errors.New("empty file name")
	}
	path := resolvePath(baseDir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(key string, fields []field) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	best, bestDist := "", max(1, len(key)/4)+1
	for _, f := range fields {
		if dist := editDistance(norm(key), norm(f.key)); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// json writes n as JSON to b, preserving the order of mapping keys. It reports success.
func (d *decoder) json(b *bytes.Buffer, n *yaml.Node, path string) bool {
	n = deref(n)
	if d.spend(n) {
		return false
	}
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i, p := range d.pairs(n, path) {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(p.key.Value)
			b.Write(k)
			b.WriteByte(':')
			if !d.json(b, p.val, mapPath(path, p.key.Value)) {
				return false
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if !d.json(b, item, fmt.Sprintf("%s[%d]", path, i)) {
				return false
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		s, ok := d.scalar(n, path, false)
		if !ok {
			return false
		}
		var x any = s.Value
		switch s.ShortTag() {
		case "!!null":
			x = nil
		case "!!bool", "!!int", "!!float":
			if err := s.Decode(&x); err != nil {
				d.errorf(n, path, "%v", err)
				return false
			}
		}
		out, err := json.Marshal(x)
		if err != nil {
			d.errorf(n, path, "%q cannot be represented in JSON", s.Value)
			return false
		}
		b.Write(out)
	default:
		d.errorf(n, path, "unexpected YAML node")
		return false
	}
	return true
}

// joinPath appends a struct key to a path: "clients[0]" + "name" = "clients[0].name".
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// mapPath appends a map key to a path, quoting keys that are not plain words:
// authorization_details_types.trade_order, authorization_details_types["urn:x:y"].
func mapPath(path, key string) string {
	if plainKey.MatchString(key) {
		return joinPath(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}
