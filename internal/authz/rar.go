package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

// Limits on authorization_details, so a client cannot make us parse or show megabytes.
const (
	maxDetailsBytes    = 64 << 10
	maxDetailsElements = 32
	maxRenderedRunes   = 512
)

// commonDetailFields are the fields RFC 9396 section 2.2 defines for every type.
var commonDetailFields = map[string]any{
	"locations":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	"actions":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	"datatypes":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	"identifier": map[string]any{"type": "string"},
	"privileges": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
}

// DetailTypeConfig registers one authorization_details type.
type DetailTypeConfig struct {
	Name        string
	Description string
	// Display is a text/template over the detail object that says in one line what is asked.
	Display string
	// Schema is a JSON Schema for the detail object.
	Schema json.RawMessage
	// RequireNumberMatching and RequireUserVerification apply to every request carrying this type.
	RequireNumberMatching   bool
	RequireUserVerification bool
}

// DetailTypes validates and renders authorization_details (RFC 9396) against registered types.
type DetailTypes struct {
	types map[string]*detailType
}

type detailType struct {
	name     string
	numbers  bool // number matching
	verify   bool // user verification
	schema   *jsonschema.Schema
	raw      map[string]any // the operator's schema, for applying defaults
	template *template.Template
}

// NewDetailTypes compiles the registered types. Each schema is checked against the whole detail
// object: its type field must equal the type name, and the RFC 9396 common fields must have their
// standard shapes, whatever the operator's schema says (so additionalProperties: false still admits
// them).
func NewDetailTypes(defs []DetailTypeConfig) (*DetailTypes, error) {
	d := &DetailTypes{types: map[string]*detailType{}}
	for _, def := range defs {
		var opSchema map[string]any
		if err := json.Unmarshal(def.Schema, &opSchema); err != nil {
			return nil, fmt.Errorf("authorization_details_types.%s.schema: %w", def.Name, err)
		}
		if props, ok := opSchema["properties"].(map[string]any); ok {
			for name := range commonDetailFields {
				if _, exists := props[name]; !exists {
					props[name] = true
				}
			}
			if _, exists := props["type"]; !exists {
				props["type"] = true
			}
		}
		common := map[string]any{
			"type":     "object",
			"required": []any{"type"},
			"properties": mergeMaps(commonDetailFields, map[string]any{
				"type": map[string]any{"const": def.Name},
			}),
		}
		wrapped := map[string]any{"allOf": []any{opSchema, common}}
		raw, _ := json.Marshal(wrapped)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("authorization_details_types.%s.schema: %w", def.Name, err)
		}
		c := jsonschema.NewCompiler()
		url := "urn:countersign:authorization_details:" + def.Name
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("authorization_details_types.%s.schema: %w", def.Name, err)
		}
		schema, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("authorization_details_types.%s.schema: %w", def.Name, err)
		}
		var tmpl *template.Template
		if def.Display != "" {
			tmpl, err = template.New(def.Name).Option("missingkey=error").Parse(def.Display)
			if err != nil {
				return nil, fmt.Errorf("authorization_details_types.%s.display: %w", def.Name, err)
			}
		}
		// Defaults are read from the operator's schema as decoded with json.Number, like instances.
		var rawNumbers map[string]any
		dec := json.NewDecoder(bytes.NewReader(def.Schema))
		dec.UseNumber()
		_ = dec.Decode(&rawNumbers)
		d.types[def.Name] = &detailType{name: def.Name, schema: schema, raw: rawNumbers, template: tmpl,
			numbers: def.RequireNumberMatching, verify: def.RequireUserVerification}
	}
	return d, nil
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// requirements reports whether any element of (validated) details has a type that requires number
// matching or user verification.
func (d *DetailTypes) requirements(details json.RawMessage) (numbers, verify bool) {
	for _, t := range detailTypes(details) {
		if dt := d.types[t]; dt != nil {
			numbers = numbers || dt.numbers
			verify = verify || dt.verify
		}
	}
	return numbers, verify
}

// Names returns the registered type names, sorted, for discovery.
func (d *DetailTypes) Names() []string {
	return slices.Sorted(maps.Keys(d.types))
}

// Parse validates authorization_details as received from a client (a JSON array) and returns the
// normalized array: schema defaults filled in, so that what the user is shown and what the token
// carries say the same thing explicitly. An empty input or empty array returns nil.
func (d *DetailTypes) Parse(raw []byte, client domain.Client) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if len(raw) > maxDetailsBytes {
		return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details is larger than %d bytes", maxDetailsBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var elements []any
	if err := dec.Decode(&elements); err != nil {
		return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details must be a JSON array of objects: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, oauth.NewError(oauth.ErrInvalidAuthorizationDetails, "authorization_details has data after the JSON array")
	}
	if len(elements) == 0 {
		return nil, nil
	}
	if len(elements) > maxDetailsElements {
		return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details has %d elements; at most %d are allowed", len(elements), maxDetailsElements)
	}
	for i, el := range elements {
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details[%d] must be an object", i)
		}
		typ, ok := obj["type"].(string)
		if !ok || typ == "" {
			return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details[%d].type is required and must be a non-empty string", i)
		}
		dt, known := d.types[typ]
		if !known {
			return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details[%d].type: unknown type %q", i, typ)
		}
		if !client.AllowsType(typ) {
			return nil, oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "authorization_details[%d].type: client %q may not request type %q", i, client.ID, typ)
		}
		if err := checkNumbers(fmt.Sprintf("authorization_details[%d]", i), obj); err != nil {
			return nil, err
		}
		applyDefaults(dt.raw, obj)
		if err := dt.schema.Validate(obj); err != nil {
			return nil, oauth.NewError(oauth.ErrInvalidAuthorizationDetails, describeSchemaError(i, err)).WithCause(err)
		}
	}
	out, err := json.Marshal(elements)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkNumbers rejects numbers that an IEEE 754 double cannot hold exactly. The receipt hashes the
// RFC 8785 canonical form, which reads numbers as doubles: 9007199254740993 would hash as
// 9007199254740992 while the token carried the original, and two different requests could share a
// receipt. Such values (large IDs, exact decimals) must travel as strings.
func checkNumbers(path string, v any) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := checkNumbers(path+"."+k, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkNumbers(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case json.Number:
		if !exactDouble(string(x)) {
			return oauth.Errorf(oauth.ErrInvalidAuthorizationDetails, "%s: the number %s cannot be represented exactly; send it as a string", path, x)
		}
	}
	return nil
}

// exactDouble reports whether the decimal literal equals the double nearest to it, compared as exact
// rationals: "123.45" does (it is what 123.45 prints as), "9007199254740993" and "1e400" do not.
func exactDouble(lit string) bool {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return false
	}
	want, ok := new(big.Rat).SetString(lit)
	if !ok {
		return false
	}
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && want.Cmp(got) == 0
}

// applyDefaults fills in absent properties that declare a default, recursing into nested objects.
func applyDefaults(schema map[string]any, obj map[string]any) {
	props, _ := schema["properties"].(map[string]any)
	for name, ps := range props {
		propSchema, ok := ps.(map[string]any)
		if !ok {
			continue
		}
		v, present := obj[name]
		if !present {
			if def, has := propSchema["default"]; has {
				obj[name] = def
			}
			continue
		}
		if nested, ok := v.(map[string]any); ok {
			applyDefaults(propSchema, nested)
		}
	}
}

// describeSchemaError names the element and field that failed, e.g.
// "authorization_details[0].quantity: minimum: got 0, want 1".
func describeSchemaError(index int, err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Sprintf("authorization_details[%d]: %v", index, err)
	}
	var msgs []string
	var walk func(u jsonschema.OutputUnit)
	walk = func(u jsonschema.OutputUnit) {
		if u.Error != nil && len(u.Errors) == 0 {
			msgs = append(msgs, fmt.Sprintf("authorization_details[%d]%s: %s", index, pointerToPath(u.InstanceLocation), u.Error.String()))
		}
		for _, c := range u.Errors {
			walk(c)
		}
	}
	walk(*ve.BasicOutput())
	msgs = slices.Compact(msgs)
	if len(msgs) == 0 {
		return fmt.Sprintf("authorization_details[%d]: %v", index, err)
	}
	if len(msgs) > 3 {
		msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
	}
	return strings.Join(msgs, "; ")
}

// pointerToPath turns a JSON pointer ("/instructedAmount/amount", "/actions/0") into a readable path
// (".instructedAmount.amount", ".actions[0]").
func pointerToPath(ptr string) string {
	if ptr == "" {
		return ""
	}
	var sb strings.Builder
	for _, seg := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		if _, err := strconv.Atoi(seg); err == nil {
			sb.WriteString("[" + seg + "]")
		} else {
			sb.WriteString("." + seg)
		}
	}
	return sb.String()
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "found " + te.Value
	}
	return err.Error()
}

// RenderedDetail is one authorization_details element as an authenticator shows it: a sentence from
// the type's display template, and every field, so nothing a template leaves out is hidden.
type RenderedDetail struct {
	Type   string  `json:"type"`
	Text   string  `json:"text"`
	Fields []Field `json:"fields"`
}

// Field is one leaf of a detail object, by path.
type Field struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Render describes stored (already validated) authorization_details for people.
func (d *DetailTypes) Render(details json.RawMessage) []RenderedDetail {
	if len(details) == 0 {
		return []RenderedDetail{}
	}
	dec := json.NewDecoder(bytes.NewReader(details))
	dec.UseNumber()
	var elements []map[string]any
	if err := dec.Decode(&elements); err != nil {
		return []RenderedDetail{}
	}
	out := make([]RenderedDetail, 0, len(elements))
	for _, el := range elements {
		typ, _ := el["type"].(string)
		rd := RenderedDetail{Type: typ, Fields: flatten("", el, nil)}
		if dt := d.types[typ]; dt != nil && dt.template != nil {
			var sb strings.Builder
			if err := dt.template.Execute(&sb, el); err == nil {
				rd.Text = cleanDisplay(sb.String())
			}
		}
		if rd.Text == "" {
			rd.Text = genericDisplay(typ, rd.Fields)
		}
		out = append(out, rd)
	}
	return out
}

// DetailFields lists every leaf field of each element of an authorization_details array, as Render
// does. Authenticators use it to check that the fields they show are the content they sign.
func DetailFields(details json.RawMessage) ([][]Field, error) {
	if len(details) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(details))
	dec.UseNumber()
	var elements []map[string]any
	if err := dec.Decode(&elements); err != nil {
		return nil, err
	}
	out := make([][]Field, 0, len(elements))
	for _, el := range elements {
		out = append(out, flatten("", el, nil))
	}
	return out, nil
}

func flatten(prefix string, v any, out []Field) []Field {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && prefix != "" {
			out = append(out, Field{Path: prefix, Value: "{}"})
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out = flatten(p, x[k], out)
		}
	case []any:
		if len(x) == 0 {
			out = append(out, Field{Path: prefix, Value: "[]"})
		}
		for i, e := range x {
			out = flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	case nil:
		out = append(out, Field{Path: prefix, Value: "null"})
	case string:
		// Control characters go, but nothing is cut: fields are the complete content.
		out = append(out, Field{Path: prefix, Value: stripControls(x)})
	default:
		out = append(out, Field{Path: prefix, Value: fmt.Sprint(x)})
	}
	return out
}

func genericDisplay(typ string, fields []Field) string {
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		if f.Path != "type" {
			parts = append(parts, f.Path+"="+f.Value)
		}
	}
	return cleanDisplay(typ + ": " + strings.Join(parts, ", "))
}

// stripControls makes text safe to show on one line: control characters become spaces and bidi
// controls go (a right-to-left override could make "BUY" read as something else).
func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Bidi_Control, r):
			return -1
		case unicode.IsControl(r) || r == utf8.RuneError:
			return ' '
		}
		return r
	}, s)
}

// cleanDisplay is stripControls plus a length cap for summary lines, so that a client cannot push
// the real content off the screen with a long text.
func cleanDisplay(s string) string {
	s = strings.TrimSpace(stripControls(s))
	if utf8.RuneCountInString(s) > maxRenderedRunes {
		s = string([]rune(s)[:maxRenderedRunes-1]) + "…"
	}
	return s
}
