package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const examplePath = "testdata/countersign.yaml"

// loadExample loads the example config shipped in testdata.
func loadExample(t *testing.T) *Config {
	t.Helper()
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	return c
}

// parse parses YAML text with baseDir as the config directory, failing the test on error.
func parse(t *testing.T, text, baseDir string) *Config {
	t.Helper()
	c, err := Parse([]byte(text), baseDir)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", text, err)
	}
	return c
}

// parseErr parses YAML text that must fail and returns the error text.
func parseErr(t *testing.T, text, baseDir string) string {
	t.Helper()
	_, err := Parse([]byte(text), baseDir)
	if err == nil {
		t.Fatalf("Parse:\n%s\nsucceeded, want an error", text)
	}
	return err.Error()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad_ExampleLoadsAndValidates(t *testing.T) {
	t.Parallel()
	c := loadExample(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"issuer", c.Issuer, "http://127.0.0.1:18080/"},
		{"listen", c.Listen, "127.0.0.1:18080"},
		{"data dir relative to the config file", c.DataDir, filepath.Join(dir, "data")},
		{"db path", c.DBPath(), filepath.Join(dir, "data", "countersign.db")},
		{"no tls", c.ListenTLS(), false},
		{"url", c.URL("/oauth/token"), "http://127.0.0.1:18080/oauth/token"},
		{"storage", c.Storage, Storage{Driver: "sqlite", SQLiteSynchronous: "full"}},
		{"log", c.Log, Log{Level: "info", Format: "text"}},
		{"tokens", c.Tokens, Tokens{
			AccessTokenTTL:  Duration{10 * time.Minute},
			IDTokenTTL:      Duration{10 * time.Minute},
			RefreshTokenTTL: Duration{720 * time.Hour},
		}},
		{"ciba", c.CIBA, CIBA{
			DefaultExpiry: Duration{300 * time.Second},
			MaxExpiry:     Duration{72 * time.Hour},
			PollInterval:  Duration{5 * time.Second},
			SlowDownStep:  Duration{5 * time.Second},
			MaxLongPoll:   Duration{30 * time.Second},
		}},
		{"limits", c.Limits, Limits{MaxPendingPerUser: 20, MaxRequestsPerMinutePerUser: 30, EnrollmentTTL: Duration{24 * time.Hour}, ReportHold: Duration{24 * time.Hour}}},
		{"users", c.Users, []User{{Sub: "alice", Email: "alice@example.com", Name: "Alice Example"}}},
		{"clients", c.Clients, []Client{
			{
				ClientID:                     "agent",
				ClientSecret:                 "agent-secret",
				Name:                         "DemoTradePro Agent",
				BackchannelTokenDeliveryMode: "poll",
				AuthorizationDetailsTypes:    []string{"trade_order", "payment_initiation"},
				Scopes:                       []string{"openid", "profile", "email"},
			},
			{
				ClientID:                              "agent-ping",
				ClientSecret:                          "ping-secret",
				BackchannelTokenDeliveryMode:          "ping",
				BackchannelClientNotificationEndpoint: "http://127.0.0.1:18090/cb",
				AuthorizationDetailsTypes:             []string{"trade_order"},
				Scopes:                                []string{"openid", "profile", "email"},
			},
		}},
		{"trade_order display", c.AuthorizationDetailsTypes["trade_order"].Display, "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})"},
		{"trade_order schema", string(c.AuthorizationDetailsTypes["trade_order"].Schema),
			`{"type":"object","required":["symbol","side","quantity"],"properties":{` +
				`"symbol":{"type":"string","pattern":"^[A-Z.]{1,10}$"},"side":{"enum":["BUY","SELL"]},` +
				`"quantity":{"type":"integer","minimum":1},"order_type":{"enum":["market","limit"],"default":"market"},` +
				`"limit_price":{"type":"number"}}}`},
		{"payment_initiation schema", string(c.AuthorizationDetailsTypes["payment_initiation"].Schema),
			`{"type":"object","required":["instructedAmount","creditorName"],"properties":{` +
				`"instructedAmount":{"type":"object","required":["currency","amount"],` +
				`"properties":{"currency":{"type":"string"},"amount":{"type":"string"}}},` +
				`"creditorName":{"type":"string"}}}`},
		{"detail type count", len(c.AuthorizationDetailsTypes), 2},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestDetailType_SchemaAndDisplayWork(t *testing.T) {
	t.Parallel()
	trade := loadExample(t).AuthorizationDetailsTypes["trade_order"]
	sch, err := trade.CompileSchema("trade_order")
	if err != nil {
		t.Fatalf("CompileSchema: %v", err)
	}
	tests := []struct {
		name   string
		detail string
		valid  bool
	}{
		{"a complete order", `{"type":"trade_order","symbol":"BRK.B","side":"BUY","quantity":10}`, true},
		{"a lowercase symbol", `{"symbol":"aapl","side":"BUY","quantity":10}`, false},
		{"a zero quantity", `{"symbol":"AAPL","side":"BUY","quantity":0}`, false},
		{"a missing side", `{"symbol":"AAPL","quantity":1}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v any
			if err := json.Unmarshal([]byte(tc.detail), &v); err != nil {
				t.Fatal(err)
			}
			err := sch.Validate(v)
			if (err == nil) != tc.valid {
				t.Errorf("Validate(%s) = %v, want valid=%v", tc.detail, err, tc.valid)
			}
		})
	}

	tmpl, err := trade.ParseDisplay("trade_order")
	if err != nil {
		t.Fatalf("ParseDisplay: %v", err)
	}
	var out bytes.Buffer
	detail := map[string]any{"side": "BUY", "quantity": 10, "symbol": "AAPL", "order_type": "limit"}
	if err := tmpl.Execute(&out, detail); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "BUY 10 AAPL (limit)"; got != want {
		t.Errorf("display = %q, want %q", got, want)
	}
}

func TestParse_Defaults(t *testing.T) {
	t.Parallel()
	base := filepath.FromSlash("/etc/countersign")
	tests := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{"listen comes from an http issuer's port", "issuer: http://127.0.0.1:18080/",
			func(c *Config) any { return c.Listen }, "127.0.0.1:18080"},
		{"listen is port 443 for an https issuer without port", "issuer: https://auth.example.com/",
			func(c *Config) any { return c.Listen }, "auth.example.com:443"},
		{"listen is port 80 for an http issuer without port", "issuer: http://localhost/",
			func(c *Config) any { return c.Listen }, "localhost:80"},
		{"listen keeps IPv6 brackets", "issuer: http://[::1]:9000/",
			func(c *Config) any { return c.Listen }, "[::1]:9000"},
		{"an explicit listen wins", "issuer: https://auth.example.com/\nlisten: :8443",
			func(c *Config) any { return c.Listen }, ":8443"},
		{"data_dir defaults to ./data next to the config", "issuer: http://localhost/",
			func(c *Config) any { return c.DataDir }, filepath.Join(base, "data")},
		{"a relative data_dir is relative to the config", "data_dir: state/db",
			func(c *Config) any { return c.DataDir }, filepath.Join(base, "state", "db")},
		{"an absolute data_dir is kept", "data_dir: " + filepath.FromSlash("/var/lib/countersign"),
			func(c *Config) any { return c.DataDir }, filepath.FromSlash("/var/lib/countersign")},
		{"tls files are relative to the config", "tls: {cert_file: cert.pem, key_file: /k/key.pem}",
			func(c *Config) any { return *c.TLS }, TLS{CertFile: filepath.Join(base, "cert.pem"), KeyFile: filepath.FromSlash("/k/key.pem")}},
		{"tls set means ListenTLS", "tls: {cert_file: cert.pem, key_file: key.pem}",
			func(c *Config) any { return c.ListenTLS() }, true},
		{"postgres gets no sqlite_synchronous", "storage: {driver: postgres, dsn: postgres://db/cs}",
			func(c *Config) any { return c.Storage }, Storage{Driver: "postgres", DSN: "postgres://db/cs"}},
		{"sqlite_synchronous normal is kept", "storage: {sqlite_synchronous: normal}",
			func(c *Config) any { return c.Storage }, Storage{Driver: "sqlite", SQLiteSynchronous: "normal"}},
		{"a set duration is kept", "ciba: {poll_interval: 2s}",
			func(c *Config) any { return c.CIBA.PollInterval }, Duration{2 * time.Second}},
		{"a set limit is kept", "limits: {max_pending_per_user: 3}",
			func(c *Config) any { return c.Limits.MaxPendingPerUser }, 3},
		{"delivery mode defaults to poll", "clients: [{client_id: a}]",
			func(c *Config) any { return c.Clients[0].BackchannelTokenDeliveryMode }, "poll"},
		{"default scopes", "clients: [{client_id: a}]",
			func(c *Config) any { return c.Clients[0].Scopes }, []string{"openid", "profile", "email"}},
		{"default scopes with refresh tokens add offline_access", "clients: [{client_id: a, refresh_tokens: true}]",
			func(c *Config) any { return c.Clients[0].Scopes }, []string{"openid", "profile", "email", "offline_access"}},
		{"explicit scopes are kept", "clients: [{client_id: a, scopes: [openid]}]",
			func(c *Config) any { return c.Clients[0].Scopes }, []string{"openid"}},
		{"an explicitly empty scope list stays empty", "clients: [{client_id: a, scopes: []}]",
			func(c *Config) any { return c.Clients[0].Scopes }, []string{}},
		{"an empty file gives defaults", "",
			func(c *Config) any { return c.Log }, Log{Level: "info", Format: "text"}},
		{"null sections give defaults", "tls:\nciba: ~\nusers: null",
			func(c *Config) any {
				return c.TLS == nil && c.Users == nil && c.CIBA.MaxLongPoll.Duration == 30*time.Second
			}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := parse(t, tc.yaml, base)
			if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParse_YAMLForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{"jwks written in YAML becomes JSON",
			"clients:\n  - client_id: a\n    jwks:\n      keys:\n        - {kty: EC, crv: P-256, x: abc, y: def}\n",
			func(c *Config) any { return string(c.Clients[0].JWKS) },
			`{"keys":[{"kty":"EC","crv":"P-256","x":"abc","y":"def"}]}`},
		{"jwks written as JSON stays the same JSON",
			`clients: [{client_id: a, jwks: {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}]`,
			func(c *Config) any { return string(c.Clients[0].JWKS) },
			`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`},
		{"schema scalars keep their JSON types",
			"authorization_details_types:\n  t:\n    schema: {type: object, properties: {n: {maximum: 1.5, default: null, const: true, examples: ['1', 2]}}}\n",
			func(c *Config) any { return string(c.AuthorizationDetailsTypes["t"].Schema) },
			`{"type":"object","properties":{"n":{"maximum":1.5,"default":null,"const":true,"examples":["1",2]}}}`},
		{"a quoted number is a string", `users: [{sub: "42", user_code: "0042"}]`,
			func(c *Config) any { return c.Users[0] }, User{Sub: "42", UserCode: "0042"}},
		{"an unquoted number is accepted as a string", `users: [{sub: 42}]`,
			func(c *Config) any { return c.Users[0].Sub }, "42"},
		{"merge keys share client settings",
			"clients:\n  - &a {client_id: a, client_secret: s, refresh_tokens: true}\n  - <<: *a\n    client_id: b\n",
			func(c *Config) any {
				return []any{c.Clients[1].ClientID, c.Clients[1].ClientSecret, c.Clients[1].RefreshTokens}
			},
			[]any{"b", "s", true}},
		{"merge keys take a list, earlier mappings first",
			"clients:\n  - &a {client_id: a, client_secret: s, name: A}\n  - &b {client_id: b, refresh_tokens: true, name: B}\n  - <<: [*a, *b]\n    client_id: c\n",
			func(c *Config) any {
				return []any{c.Clients[2].ClientID, c.Clients[2].ClientSecret, c.Clients[2].Name, c.Clients[2].RefreshTokens}
			},
			[]any{"c", "s", "A", true}},
		{"merge keys work inside a schema",
			"authorization_details_types:\n  a: {schema: &s {type: object, title: A}}\n  b:\n    schema:\n      <<: *s\n      title: B\n",
			func(c *Config) any { return string(c.AuthorizationDetailsTypes["b"].Schema) }, `{"title":"B","type":"object"}`},
		{"an alias reuses a value",
			"authorization_details_types:\n  a: &t {schema: {type: object}}\n  b: *t\n",
			func(c *Config) any { return string(c.AuthorizationDetailsTypes["b"].Schema) }, `{"type":"object"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := parse(t, tc.yaml, t.TempDir())
			if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParse_UnknownKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"top level", "issuer: http://localhost/\nissuers: x\n", `line 2: unknown key "issuers" (did you mean "issuer"?)`},
		{"in a section", "ciba:\n  poll_intervall: 5s\n", `line 2: ciba: unknown key "poll_intervall" (did you mean "poll_interval"?)`},
		{"in a client", "clients:\n  - client_id: a\n    clientSecret: s\n", `line 3: clients[0]: unknown key "clientSecret" (did you mean "client_secret"?)`},
		{"in a user", "users:\n  - sub: a\n  - sub: b\n    phones: 1\n", `line 4: users[1]: unknown key "phones" (did you mean "phone"?)`},
		{"in a detail type", "authorization_details_types:\n  t:\n    scheme: {}\n", `line 3: authorization_details_types.t: unknown key "scheme" (did you mean "schema"?)`},
		{"in tls", "tls: {cert: a}\n", `line 1: tls: unknown key "cert"`},
		{"a _file for a non-secret", "clients: [{client_id_file: x}]\n", `line 1: clients[0]: unknown key "client_id_file"`},
		{"anchors need a known key", "x-defaults: &d {client_secret: s}\n", `line 1: unknown key "x-defaults"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := parseErr(t, tc.yaml, t.TempDir()); got != tc.want {
				t.Errorf("error = %q\nwant    %q", got, tc.want)
			}
		})
	}
}

func TestParse_DecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"a string for an integer", "limits: {max_pending_per_user: many}", `line 1: limits.max_pending_per_user: expected an integer, got "many"`},
		{"a string for a boolean", "clients: [{refresh_tokens: maybe}]", `line 1: clients[0].refresh_tokens: expected true or false, got "maybe"`},
		{"a bad duration", "tokens:\n  access_token_ttl: soon\n", `line 2: tokens.access_token_ttl: "soon" is not a duration`},
		{"a mapping for a list", "users: {sub: a}", `line 1: users: expected a list, got a mapping`},
		{"a list for a string", "issuer: [a]", `line 1: issuer: expected a single value, got a list`},
		{"a scalar for a section", "ciba: fast", `line 1: ciba: expected a mapping, got "fast"`},
		{"a duplicate key", "issuer: a\nlisten: b\nissuer: c\n", `line 3: key "issuer" is set twice (first on line 1)`},
		{"a YAML syntax error", "issuer: [a\n", `did not find expected`},
		{"two documents", "issuer: a\n---\nissuer: b\n", `line 2: the file must hold a single YAML document`},
		{"a top level list", "- a\n", `line 1: expected a mapping, got a list`},
		{"a merge of a scalar", "clients:\n  - <<: 5\n", `line 2: clients[0]: << must merge a mapping, got "5"`},
		{"a merge of a list of scalars", "clients:\n  - <<: [5]\n", `line 2: clients[0]: << must merge mappings, got "5"`},
		{"a non-scalar key", "clients:\n  - [a]: 1\n", `line 2: clients[0]: keys must be plain strings, got a list`},
		{"aliases that expand without end", aliasBomb(), `the document is too large`},
		{"NaN in a schema", "authorization_details_types:\n  t:\n    schema: {maximum: .nan}\n", `line 3: authorization_details_types.t.schema.maximum: ".nan" cannot be represented in JSON`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := parseErr(t, tc.yaml, t.TempDir()); !strings.Contains(got, tc.want) {
				t.Errorf("error = %q\nwant it to contain %q", got, tc.want)
			}
		})
	}
}

// aliasBomb is a small document whose aliases expand to 10^10 nodes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("authorization_details_types:\n  t:\n    schema:\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "      l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

func TestParse_ReportsEveryDecodeErrorAtOnce(t *testing.T) {
	t.Parallel()
	got := parseErr(t, "issuer: http://localhost/\nfoo: 1\nclients:\n  - client_id: a\n    refresh_tokens: maybe\n    bar: 2\n", t.TempDir())
	want := "line 2: unknown key \"foo\"\n" +
		"line 5: clients[0].refresh_tokens: expected true or false, got \"maybe\"\n" +
		"line 6: clients[0]: unknown key \"bar\""
	if got != want {
		t.Errorf("error =\n%s\nwant\n%s", got, want)
	}
}

func TestLoad_ErrorsNameTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		want string
	}{
		{"a missing file", filepath.Join(dir, "missing.yaml"), filepath.Join(dir, "missing.yaml")},
		{"an unknown key", writeFile(t, dir, "unknown.yaml", "issuer: http://localhost/\nfoo: 1\n"),
			filepath.Join(dir, "unknown.yaml") + `:2: unknown key "foo"`},
		{"a syntax error", writeFile(t, dir, "syntax.yaml", "issuer: [\n"), filepath.Join(dir, "syntax.yaml") + ": "},
		{"a missing secret file", writeFile(t, dir, "secret.yaml", "clients:\n  - client_secret_file: nope.txt\n"),
			filepath.Join(dir, "secret.yaml") + ":2: clients[0].client_secret_file: open " + filepath.Join(dir, "nope.txt")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) error = %v, want it to contain %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestParse_SecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "secret.txt", "s3cret\n")
	writeFile(t, dir, "two-newlines.txt", "s3cret\n\n")
	writeFile(t, dir, "crlf.txt", "s3cret\r\n")
	writeFile(t, dir, "no-newline.txt", "s3cret")
	writeFile(t, dir, "code.txt", "1234\n")
	writeFile(t, dir, "dsn.txt", "postgres://u:p@db/cs?sslmode=disable\n")
	writeFile(t, dir, "empty.txt", "\n")
	abs := writeFile(t, t.TempDir(), "elsewhere.txt", "far\n")

	ok := []struct {
		name string
		yaml string
		got  func(*Config) string
		want string
	}{
		{"client_secret_file", "clients: [{client_id: a, client_secret_file: secret.txt}]",
			func(c *Config) string { return c.Clients[0].ClientSecret }, "s3cret"},
		{"only one trailing newline is trimmed", "clients: [{client_id: a, client_secret_file: two-newlines.txt}]",
			func(c *Config) string { return c.Clients[0].ClientSecret }, "s3cret\n"},
		{"a CRLF is one newline", "clients: [{client_id: a, client_secret_file: crlf.txt}]",
			func(c *Config) string { return c.Clients[0].ClientSecret }, "s3cret"},
		{"no trailing newline", "clients: [{client_id: a, client_secret_file: no-newline.txt}]",
			func(c *Config) string { return c.Clients[0].ClientSecret }, "s3cret"},
		{"an absolute path", "clients: [{client_id: a, client_secret_file: '" + abs + "'}]",
			func(c *Config) string { return c.Clients[0].ClientSecret }, "far"},
		{"user_code_file", "users: [{sub: a, user_code_file: code.txt}]",
			func(c *Config) string { return c.Users[0].UserCode }, "1234"},
		{"storage dsn_file", "storage: {driver: postgres, dsn_file: dsn.txt}",
			func(c *Config) string { return c.Storage.DSN }, "postgres://u:p@db/cs?sslmode=disable"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.got(parse(t, tc.yaml, dir)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	bad := []struct {
		name string
		yaml string
		want string
	}{
		{"both the secret and its file", "clients:\n  - client_secret: x\n    client_secret_file: secret.txt\n",
			"line 3: clients[0].client_secret_file: set either client_secret or client_secret_file, not both"},
		{"both a user code and its file", "users: [{user_code_file: code.txt, user_code: '1'}]",
			"line 1: users[0].user_code_file: set either user_code or user_code_file, not both"},
		{"both a dsn and its file", "storage: {dsn: x, dsn_file: dsn.txt}",
			"line 1: storage.dsn_file: set either dsn or dsn_file, not both"},
		{"a missing file", "clients: [{client_secret_file: missing.txt}]",
			"line 1: clients[0].client_secret_file: open " + filepath.Join(dir, "missing.txt")},
		{"an empty file", "clients: [{client_secret_file: empty.txt}]",
			"line 1: clients[0].client_secret_file: " + filepath.Join(dir, "empty.txt") + " is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := parseErr(t, tc.yaml, dir); !strings.HasPrefix(got, tc.want) {
				t.Errorf("error = %q\nwant it to start with %q", got, tc.want)
			}
		})
	}
}

// TestParse_EnvExpansion uses t.Setenv, so neither it nor its subtests run in parallel.
func TestParse_EnvExpansion(t *testing.T) {
	t.Setenv("CS_TEST_SECRET", "from-env")
	t.Setenv("CS_TEST_MAX", "7")
	t.Setenv("CS_TEST_TTL", "90")
	t.Setenv("CS_TEST_TRICKY", `a #b: "c" ${CS_TEST_SECRET}`)
	t.Setenv("CS_TEST_EMPTY", "")
	t.Setenv("CS_TEST_TRUE", "true")
	t.Setenv("CS_TEST_NULL", "null")
	t.Setenv("CS_TEST_HOST", "auth.example.com")
	t.Setenv("CS_TEST_UNSET", "")
	os.Unsetenv("CS_TEST_UNSET") // restored by t.Setenv's cleanup
	dir := t.TempDir()
	writeFile(t, dir, "from-env.txt", "file-secret\n")

	ok := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{"a whole value", "clients: [{client_secret: '${CS_TEST_SECRET}'}]",
			func(c *Config) any { return c.Clients[0].ClientSecret }, "from-env"},
		{"an unquoted value", "clients:\n  - client_secret: ${CS_TEST_SECRET}\n",
			func(c *Config) any { return c.Clients[0].ClientSecret }, "from-env"},
		{"inside a value", "issuer: https://${CS_TEST_HOST}/",
			func(c *Config) any { return c.Issuer }, "https://auth.example.com/"},
		{"an integer", "limits:\n  max_pending_per_user: ${CS_TEST_MAX}\n",
			func(c *Config) any { return c.Limits.MaxPendingPerUser }, 7},
		{"a quoted integer in a flow mapping", "limits: {max_pending_per_user: '${CS_TEST_MAX}'}",
			func(c *Config) any { return c.Limits.MaxPendingPerUser }, 7},
		{"a boolean", "clients: [{refresh_tokens: \"${CS_TEST_TRUE}\"}]",
			func(c *Config) any { return c.Clients[0].RefreshTokens }, true},
		{"a duration in seconds", "ciba: {max_long_poll: \"${CS_TEST_TTL}\"}",
			func(c *Config) any { return c.CIBA.MaxLongPoll }, Duration{90 * time.Second}},
		{"a string that looks like null", "clients:\n  - client_secret: ${CS_TEST_NULL}\n",
			func(c *Config) any { return c.Clients[0].ClientSecret }, "null"},
		{"an empty variable", "clients: [{name: 'x${CS_TEST_EMPTY}y'}]",
			func(c *Config) any { return c.Clients[0].Name }, "xy"},
		{"a value with YAML syntax is taken literally, not expanded again", "clients:\n  - client_secret: ${CS_TEST_TRICKY}\n",
			func(c *Config) any { return c.Clients[0].ClientSecret }, `a #b: "c" ${CS_TEST_SECRET}`},
		{"$${NAME} is a literal ${NAME}", "clients: [{client_secret: '$${CS_TEST_SECRET}'}]",
			func(c *Config) any { return c.Clients[0].ClientSecret }, "${CS_TEST_SECRET}"},
		{"other dollars are left alone", `clients: [{client_secret: "$HOME $ {X} $(Y) $$ $1 $}"}]`,
			func(c *Config) any { return c.Clients[0].ClientSecret }, "$HOME $ {X} $(Y) $$ $1 $}"},
		{"a regex pattern survives", "authorization_details_types:\n  t:\n    schema: {type: object, properties: {s: {pattern: \"^[A-Z.]{1,10}$\"}}}\n",
			func(c *Config) any { return string(c.AuthorizationDetailsTypes["t"].Schema) },
			`{"type":"object","properties":{"s":{"pattern":"^[A-Z.]{1,10}$"}}}`},
		{"inside a schema, typed by the value unless quoted", "authorization_details_types:\n  t:\n    schema:\n      type: object\n      maxProperties: ${CS_TEST_MAX}\n      title: ${CS_TEST_SECRET}\n      description: '${CS_TEST_MAX}'\n",
			func(c *Config) any { return string(c.AuthorizationDetailsTypes["t"].Schema) },
			`{"type":"object","maxProperties":7,"title":"from-env","description":"7"}`},
		{"a _file path", "clients: [{client_secret_file: '${CS_TEST_SECRET}.txt'}]",
			func(c *Config) any { return c.Clients[0].ClientSecret }, "file-secret"},
		{"comments are not expanded", "# ${CS_TEST_UNSET}\nissuer: http://localhost/ # ${CS_TEST_UNSET}\n",
			func(c *Config) any { return c.Issuer }, "http://localhost/"},
		{"the example file's pattern survives", mustRead(t, examplePath),
			func(c *Config) any {
				return strings.Contains(string(c.AuthorizationDetailsTypes["trade_order"].Schema), `"pattern":"^[A-Z.]{1,10}$"`)
			}, true},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.got(parse(t, tc.yaml, dir)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name string
		yaml string
		want string
	}{
		{"an unset variable", "clients:\n  - client_secret: ${CS_TEST_UNSET}\n",
			"line 2: clients[0].client_secret: environment variable CS_TEST_UNSET is not set"},
		{"an unset variable in a schema", "authorization_details_types:\n  t:\n    schema: {title: '${CS_TEST_UNSET}'}\n",
			"line 3: authorization_details_types.t.schema.title: environment variable CS_TEST_UNSET is not set"},
		{"an expanded value of the wrong type", "limits: {max_pending_per_user: '${CS_TEST_SECRET}'}",
			`line 1: limits.max_pending_per_user: expected an integer, got "from-env"`},
		{"an unquoted reference in a flow mapping", "limits: {max_pending_per_user: ${CS_TEST_MAX}}",
			`did not find expected ',' or '}' (inside {...} or [...], quote ${NAME} references: "${NAME}")`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseErr(t, tc.yaml, dir); !strings.HasSuffix(got, tc.want) {
				t.Errorf("error = %q\nwant it to end with %q", got, tc.want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("CS_TEST_A", "1")
	tests := []struct{ in, want string }{
		{"${CS_TEST_A}", "1"},
		{"x${CS_TEST_A}y${CS_TEST_A}", "x1y1"},
		{"$${CS_TEST_A}", "${CS_TEST_A}"},
		{"$CS_TEST_A", "$CS_TEST_A"},
		{"${CS-TEST}", "${CS-TEST}"},
		{"${1A}", "${1A}"},
		{"^[A-Z]$", "^[A-Z]$"},
		{"${}", "${}"},
	}
	for _, tc := range tests {
		got, missing := expandEnv(tc.in)
		if got != tc.want || missing != nil {
			t.Errorf("expandEnv(%q) = %q, %v; want %q, none missing", tc.in, got, missing, tc.want)
		}
	}
}

func TestDev_Validates(t *testing.T) {
	t.Parallel()
	c := Dev("/tmp/cs", "127.0.0.1:9000")
	var verrs ValidationErrors
	if err := c.Validate(); !errors.As(err, &verrs) || len(verrs) != 1 || verrs[0].Path != "clients[0].client_secret" {
		t.Fatalf("Validate before the secret is set = %v, want only clients[0].client_secret", err)
	}
	c.Clients[0].ClientSecret = "generated"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	example := loadExample(t)
	checks := []struct {
		name      string
		got, want any
	}{
		{"issuer", c.Issuer, "http://localhost:9000/"},
		{"listen", c.Listen, "127.0.0.1:9000"},
		{"db path", c.DBPath(), filepath.Join("/tmp/cs", "countersign.db")},
		{"storage", c.Storage, Storage{Driver: "sqlite", SQLiteSynchronous: "full"}},
		{"users", c.Users, []User{{Sub: "alice", Email: "alice@example.com", Name: "Alice Example"}}},
		{"client", c.Clients, []Client{{
			ClientID:                     "agent",
			ClientSecret:                 "generated",
			Name:                         "DemoTradePro Agent",
			BackchannelTokenDeliveryMode: "poll",
			AuthorizationDetailsTypes:    []string{"trade_order", "payment_initiation"},
			Scopes:                       []string{"openid", "profile", "email"},
		}}},
		{"detail types as in the example", c.AuthorizationDetailsTypes, example.AuthorizationDetailsTypes},
		{"defaults as in the example", []any{c.Tokens, c.CIBA, c.Limits, c.Log}, []any{example.Tokens, example.CIBA, example.Limits, example.Log}},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestDev_Addresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dataDir, listen     string
		issuer, wantListen, dbDir string
	}{
		{"defaults", "", "", "http://localhost:8080/", "127.0.0.1:8080", "countersign-data"},
		{"all interfaces", "d", "0.0.0.0:9000", "http://localhost:9000/", "0.0.0.0:9000", "d"},
		{"no host", "d", ":9000", "http://localhost:9000/", ":9000", "d"},
		{"IPv6 loopback", "d", "[::1]:9000", "http://localhost:9000/", "[::1]:9000", "d"},
		{"another address", "d", "192.0.2.7:9000", "http://192.0.2.7:9000/", "192.0.2.7:9000", "d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Dev(tc.dataDir, tc.listen)
			c.Clients[0].ClientSecret = "s"
			if c.Issuer != tc.issuer || c.Listen != tc.wantListen || c.DataDir != tc.dbDir {
				t.Errorf("Dev(%q, %q) = issuer %q, listen %q, data dir %q; want %q, %q, %q",
					tc.dataDir, tc.listen, c.Issuer, c.Listen, c.DataDir, tc.issuer, tc.wantListen, tc.dbDir)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}
