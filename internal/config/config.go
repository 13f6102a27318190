// Package config loads, expands and validates Countersign's YAML configuration file
// (countersign.yaml).
//
// Loading happens in two steps. [Load] (or [Parse]) reads the file strictly: an unknown key is an
// error that names the key and its line, ${NAME} references are replaced by environment variables,
// secrets named by *_file keys are read from files, relative paths are resolved against the config
// file's directory, and defaults are applied. [Config.Validate] then checks the result and reports
// every problem at once, each with the key path it concerns ("clients[1].scopes: must include openid").
//
// Environment references: exactly the form ${NAME} (NAME matching [A-Za-z_][A-Za-z0-9_]*) is
// replaced, inside scalar values only (not in keys, not in comments). A "$" anywhere else is left
// alone, so regular expressions such as "^[A-Z]$" survive, and $${NAME} is the literal text ${NAME}.
// A reference to an unset variable is an error naming it; a variable set to "" expands to "".
// Expansion happens after the YAML is parsed, so a value containing YAML syntax ("#", ": ", quotes)
// is taken literally and never changes the structure of the file. An expanded value takes the type
// of its key: "max_pending_per_user: ${MAX}" is an integer when MAX is "20". Inside a flow mapping or
// list ({...}, [...]) quote the reference, as YAML reads its braces as structure:
// "limits: {max_pending_per_user: '${MAX}'}". Inside jwks and schema, where JSON types come from the
// YAML, an expanded unquoted value gets the type its text has (20 is a number) and a quoted one
// stays a string.
//
// Secret files: client_secret_file, user_code_file and storage.dsn_file name a file (relative to the
// config file's directory) whose content, minus one trailing newline, is the secret. Setting both a
// secret and its _file is an error.
//
// A minimal file:
//
//	issuer: https://auth.example.com/
//	users:
//	  - {sub: alice, email: alice@example.com, name: Alice Example}
//	clients:
//	  - client_id: agent
//	    client_secret: ${AGENT_SECRET}
//	    authorization_details_types: [trade_order]
//	authorization_details_types:
//	  trade_order:
//	    display: "{{.side}} {{.quantity}} {{.symbol}}"
//	    schema: {type: object, required: [symbol, side, quantity]}
package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Default values applied by [Parse] to keys the file leaves unset.
const (
	// DefaultDataDir is the data directory when data_dir is not set, relative to the config file.
	DefaultDataDir = "./data"
	// DBFileName is the SQLite database file inside the data directory.
	DBFileName = "countersign.db"
)

// Config is the whole configuration file.
type Config struct {
	// Issuer is the server's public base URL, an absolute http or https URL ending with "/". It is
	// kept exactly as written: the discovery document's "issuer" and the iss claim of every token
	// must equal it byte for byte, and endpoint URLs are built by appending paths to it (see
	// [Config.URL]). Validate requires the trailing "/" rather than adding it, so that what clients
	// configure and what the server announces can never differ by a slash.
	Issuer string `yaml:"issuer"`
	// Listen is the host:port the server binds. Default: the host and port of the issuer (port 80
	// or 443 by scheme when the issuer has none).
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database and the signing keys. Default "./data". After Parse it is
	// resolved against the config file's directory.
	DataDir string `yaml:"data_dir"`
	// TLS, when set, makes the server serve HTTPS with these files.
	TLS *TLS `yaml:"tls"`
	// Storage selects the database.
	Storage Storage `yaml:"storage"`
	// Log configures the server's logs.
	Log Log `yaml:"log"`
	// Tokens sets token lifetimes.
	Tokens Tokens `yaml:"tokens"`
	// CIBA sets the backchannel authentication timings.
	CIBA CIBA `yaml:"ciba"`
	// Limits protects users from floods of requests.
	Limits Limits `yaml:"limits"`
	// Users are the people who approve or deny requests.
	Users []User `yaml:"users"`
	// Clients are the registered agent backends and resource servers.
	Clients []Client `yaml:"clients"`
	// AuthorizationDetailsTypes defines the RAR (RFC 9396) authorization_details types, by name.
	AuthorizationDetailsTypes map[string]DetailType `yaml:"authorization_details_types"`
	// Notifications configures how people are told about requests.
	Notifications Notifications `yaml:"notifications"`
}

// Notifications configures the channels that tell a person a request waits for them. Each user's
// channels are tried in order until one delivers; a channel that fails falls back to the next.
type Notifications struct {
	// DefaultChannels are the channels of users who list none: default [webpush, email] (each used
	// only when the user can be reached that way).
	DefaultChannels []string `yaml:"default_channels"`
	// WebPush configures Web Push to the authenticator app. Its VAPID key pair is generated on first
	// start and kept in the database.
	WebPush WebPush `yaml:"webpush"`
	// Email sends a message with a link to the request over SMTP.
	Email *Email `yaml:"email"`
	// SMS sends a text with a link through a Twilio-compatible HTTP API.
	SMS *SMS `yaml:"sms"`
	// Webhook posts signed JSON for every notification (to bridge to Slack or anything else).
	Webhook *Webhook `yaml:"webhook"`
	// OperatorWebhook receives "deny and report" alerts.
	OperatorWebhook *Webhook `yaml:"operator_webhook"`
	// ReminderBefore is when a still pending request is reminded: this long before it expires, for
	// requests that live at least twice as long. Default 30m.
	ReminderBefore Duration `yaml:"reminder_before"`
}

// WebPush configures Web Push (RFC 8030, 8291, 8292).
type WebPush struct {
	// Subscriber is the contact in the VAPID claims ("mailto:ops@example.com" or an https URL), which
	// push services use to reach the operator. Default: mailto:admin@ + the issuer's host.
	Subscriber string `yaml:"subscriber"`
}

// Email configures the SMTP channel.
type Email struct {
	Host string `yaml:"host"`
	// Port defaults to 587 with starttls, 465 with tls, 25 with none.
	Port int `yaml:"port"`
	// Security is starttls (default), tls (implicit TLS) or none (loopback hosts only).
	Security string `yaml:"security"`
	Username string `yaml:"username"`
	// Password is a secret: may come from password_file.
	Password string `yaml:"password" config:"file"`
	// From is the sender address.
	From string `yaml:"from"`
}

// SMS configures a Twilio-compatible SMS API.
type SMS struct {
	// BaseURL defaults to https://api.twilio.com.
	BaseURL    string `yaml:"base_url"`
	AccountSID string `yaml:"account_sid"`
	// AuthToken is a secret: may come from auth_token_file.
	AuthToken string `yaml:"auth_token" config:"file"`
	From      string `yaml:"from"`
}

// Webhook is a signed JSON webhook target.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret signs each delivery (HMAC-SHA256); may come from secret_file.
	Secret string `yaml:"secret" config:"file"`
}

// TLS names the certificate and key files for serving HTTPS. Relative paths are resolved against
// the config file's directory by Parse.
type TLS struct {
	// CertFile is a PEM file holding the certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is a PEM file holding the private key.
	KeyFile string `yaml:"key_file"`
}

// Storage selects and configures the database.
type Storage struct {
	// Driver is "sqlite" (default) or "postgres".
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection string (a secret: may come from dsn_file). Unused by SQLite,
	// whose database is [Config.DBPath].
	DSN string `yaml:"dsn" config:"file"`
	// SQLiteSynchronous is SQLite's synchronous pragma: "full" (default, durable) or "normal"
	// (faster; with WAL, a power loss may drop the last transactions but never corrupts).
	SQLiteSynchronous string `yaml:"sqlite_synchronous"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// Tokens sets token lifetimes.
type Tokens struct {
	// AccessTokenTTL is the access token lifetime; default 10m. Clients may override it.
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	// IDTokenTTL is the ID token lifetime; default 10m.
	IDTokenTTL Duration `yaml:"id_token_ttl"`
	// RefreshTokenTTL is the refresh token lifetime; default 720h.
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"`
}

// CIBA sets backchannel authentication timings.
type CIBA struct {
	// DefaultExpiry is expires_in when the client sends no requested_expiry; default 300s.
	DefaultExpiry Duration `yaml:"default_expiry"`
	// MaxExpiry caps requested_expiry; default 72h.
	MaxExpiry Duration `yaml:"max_expiry"`
	// PollInterval is the interval returned to polling clients; default 5s.
	PollInterval Duration `yaml:"poll_interval"`
	// SlowDownStep is how much the interval grows after each slow_down; default 5s, at least 5s
	// (CIBA section 11).
	SlowDownStep Duration `yaml:"slow_down_step"`
	// MaxLongPoll caps how long a token request with "Prefer: wait=N" is held; default 30s.
	MaxLongPoll Duration `yaml:"max_long_poll"`
}

// Limits protects users from floods of requests.
type Limits struct {
	// MaxPendingPerUser is how many pending requests a user may have at once; default 20.
	MaxPendingPerUser int `yaml:"max_pending_per_user"`
	// MaxRequestsPerMinutePerUser is how many new requests per minute a user may receive; default 30.
	MaxRequestsPerMinutePerUser int `yaml:"max_requests_per_minute_per_user"`
	// EnrollmentTTL is how long a device enrollment invitation stays valid; default 24h.
	EnrollmentTTL Duration `yaml:"enrollment_ttl"`
	// ReportHold is how long a client's requests to a user are refused after the user reported one
	// of them as not theirs; default 24h.
	ReportHold Duration `yaml:"report_hold"`
}

// User is a person who approves or denies requests.
type User struct {
	// Sub is the stable subject identifier that appears as sub in tokens.
	Sub string `yaml:"sub"`
	// Email is optional; a login_hint may name the user by it.
	Email string `yaml:"email"`
	// Name is the display name.
	Name string `yaml:"name"`
	// UserCode is the optional CIBA user_code (a secret: may come from user_code_file).
	UserCode string `yaml:"user_code" config:"file"`
	// Phone is an E.164 number (+15551234567) for the SMS channel.
	Phone string `yaml:"phone"`
	// Channels lists the notification channels to try, in order: webpush, email, sms, webhook.
	// Empty uses notifications.default_channels.
	Channels []string `yaml:"channels"`
}

// Client is a registered client: an agent backend that asks for approval, or a resource server that
// introspects tokens.
type Client struct {
	// ClientID identifies the client.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates the client with client_secret_basic or client_secret_post (a
	// secret: may come from client_secret_file).
	ClientSecret string `yaml:"client_secret" config:"file"`
	// Name is shown to users when the client asks for approval.
	Name string `yaml:"name"`
	// TokenEndpointAuthMethod restricts client authentication to one method: client_secret_basic,
	// client_secret_post or private_key_jwt. Empty accepts both secret methods when the client has a
	// secret, and private_key_jwt when it has keys.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
	// JWKS is an inline JWK set (YAML key "jwks", written as a YAML or JSON object and converted to
	// JSON) holding the client's public keys for private_key_jwt and signed request objects.
	JWKS json.RawMessage `yaml:"jwks"`
	// JWKSURI is where the client publishes its JWK set, instead of JWKS.
	JWKSURI string `yaml:"jwks_uri"`
	// BackchannelTokenDeliveryMode is poll (default), ping or push.
	BackchannelTokenDeliveryMode string `yaml:"backchannel_token_delivery_mode"`
	// BackchannelClientNotificationEndpoint receives ping and push callbacks.
	BackchannelClientNotificationEndpoint string `yaml:"backchannel_client_notification_endpoint"`
	// BackchannelAuthenticationRequestSigningAlg, when set, requires the client to send signed
	// request objects with this algorithm (RS256, PS256, ES256 or EdDSA).
	BackchannelAuthenticationRequestSigningAlg string `yaml:"backchannel_authentication_request_signing_alg"`
	// BackchannelUserCodeParameter lets the client send user_code.
	BackchannelUserCodeParameter bool `yaml:"backchannel_user_code_parameter"`
	// AuthorizationDetailsTypes lists the RAR types this client may request; each must be defined in
	// the top-level authorization_details_types.
	AuthorizationDetailsTypes []string `yaml:"authorization_details_types"`
	// Scopes lists the scopes the client may request. Default: openid, profile, email, plus
	// offline_access when RefreshTokens is set.
	Scopes []string `yaml:"scopes"`
	// Audiences, when not empty, lists the only audiences (resource indicators) the client may
	// request.
	Audiences []string `yaml:"audiences"`
	// IDTokenSignedResponseAlg is the ID token algorithm (RS256, ES256 or PS256); empty means RS256.
	IDTokenSignedResponseAlg string `yaml:"id_token_signed_response_alg"`
	// RefreshTokens lets the client receive refresh tokens (with the offline_access scope).
	RefreshTokens bool `yaml:"refresh_tokens"`
	// AccessTokenTTL overrides tokens.access_token_ttl for this client when positive.
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	// ExpiredAsAccessDenied reports expired requests as access_denied instead of expired_token, like
	// Auth0 does (a compatibility switch).
	ExpiredAsAccessDenied bool `yaml:"expired_as_access_denied"`
	// RequireUserVerification makes every approval of this client's requests carry a passkey
	// assertion with user verification.
	RequireUserVerification bool `yaml:"require_user_verification"`
	// RequireNumberMatching gives each request a two-digit verification_code that the agent shows
	// and the user must pick in the app before approving (against push fatigue).
	RequireNumberMatching bool `yaml:"require_number_matching"`
}

// DetailType defines one RAR authorization_details type.
type DetailType struct {
	// Description tells operators and users what the type is for.
	Description string `yaml:"description"`
	// Display is a Go text/template executed over the detail object (a map from the JSON), giving
	// the one-line summary shown to the user. Only the template package's builtin functions may be
	// used. The full detail is shown as well: a template never hides fields.
	Display string `yaml:"display"`
	// Schema is the JSON Schema (YAML key "schema", written in YAML and converted to JSON) each
	// detail of this type must satisfy. Draft 2020-12 unless it says otherwise with $schema. It must
	// describe an object.
	Schema json.RawMessage `yaml:"schema"`
	// RequireUserVerification and RequireNumberMatching apply to every request carrying this type,
	// as the client settings of the same names do.
	RequireUserVerification bool `yaml:"require_user_verification"`
	RequireNumberMatching   bool `yaml:"require_number_matching"`
}

// Load reads the config file at path and parses it (see [Parse]), resolving relative paths against
// the file's directory. It does not validate: call [Config.Validate] next. Errors name the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	cfg, err := Parse(data, dir)
	if err != nil {
		if pe, ok := err.(*parseErrors); ok {
			pe.file = path
			return nil, pe
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a config file's content. It expands ${NAME} references, decodes strictly (an
// unknown key is an error naming it and its line), reads *_file secrets relative to baseDir,
// resolves relative paths (data_dir, tls files) against baseDir, and applies defaults. Every
// decoding problem is reported at once, one per line. Parse does not validate: call
// [Config.Validate] next.
func Parse(data []byte, baseDir string) (*Config, error) {
	d := newDecoder(baseDir)
	cfg := &Config{}
	d.document(data, cfg)
	if err := d.err(); err != nil {
		return nil, err
	}
	cfg.setDefaults(baseDir)
	return cfg, nil
}

// ListenTLS reports whether the server serves HTTPS itself (the tls section is set).
func (c *Config) ListenTLS() bool { return c.TLS != nil }

// DBPath is the SQLite database file: DataDir/countersign.db.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, DBFileName) }

// URL returns the absolute URL of an endpoint path under the issuer, such as
// URL("/oauth/token") = "https://auth.example.com/oauth/token". It relies on the issuer ending
// with "/", which Validate requires.
func (c *Config) URL(path string) string {
	return c.Issuer + strings.TrimPrefix(path, "/")
}

// setDefaults fills unset values and resolves relative paths against baseDir.
func (c *Config) setDefaults(baseDir string) {
	if c.Listen == "" {
		c.Listen = listenFromIssuer(c.Issuer)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.DataDir = resolvePath(baseDir, c.DataDir)
	if c.TLS != nil {
		c.TLS.CertFile = resolvePath(baseDir, c.TLS.CertFile)
		c.TLS.KeyFile = resolvePath(baseDir, c.TLS.KeyFile)
	}

	if c.Storage.Driver == "" {
		c.Storage.Driver = "sqlite"
	}
	if c.Storage.Driver == "sqlite" && c.Storage.SQLiteSynchronous == "" {
		c.Storage.SQLiteSynchronous = "full"
	}
	setString(&c.Log.Level, "info")
	setString(&c.Log.Format, "text")

	setDuration(&c.Tokens.AccessTokenTTL, 10*time.Minute)
	setDuration(&c.Tokens.IDTokenTTL, 10*time.Minute)
	setDuration(&c.Tokens.RefreshTokenTTL, 720*time.Hour)

	setDuration(&c.CIBA.DefaultExpiry, 300*time.Second)
	setDuration(&c.CIBA.MaxExpiry, 72*time.Hour)
	setDuration(&c.CIBA.PollInterval, 5*time.Second)
	setDuration(&c.CIBA.SlowDownStep, 5*time.Second)
	setDuration(&c.CIBA.MaxLongPoll, 30*time.Second)

	if c.Limits.MaxPendingPerUser == 0 {
		c.Limits.MaxPendingPerUser = 20
	}
	if c.Limits.MaxRequestsPerMinutePerUser == 0 {
		c.Limits.MaxRequestsPerMinutePerUser = 30
	}
	setDuration(&c.Limits.EnrollmentTTL, 24*time.Hour)
	setDuration(&c.Limits.ReportHold, 24*time.Hour)
	setDuration(&c.Notifications.ReminderBefore, 30*time.Minute)
	if c.Notifications.DefaultChannels == nil {
		c.Notifications.DefaultChannels = []string{"webpush", "email"}
	}
	if c.Notifications.WebPush.Subscriber == "" {
		if u, err := url.Parse(c.Issuer); err == nil && u.Hostname() != "" {
			c.Notifications.WebPush.Subscriber = "mailto:admin@" + u.Hostname()
		}
	}
	if e := c.Notifications.Email; e != nil {
		setString(&e.Security, "starttls")
		if e.Port == 0 {
			e.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[e.Security]
		}
	}
	if s := c.Notifications.SMS; s != nil {
		setString(&s.BaseURL, "https://api.twilio.com")
	}

	for i := range c.Clients {
		cl := &c.Clients[i]
		setString(&cl.BackchannelTokenDeliveryMode, "poll")
		if cl.Scopes == nil {
			cl.Scopes = []string{"openid", "profile", "email"}
			if cl.RefreshTokens {
				cl.Scopes = append(cl.Scopes, "offline_access")
			}
		}
	}
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

// resolvePath makes a relative path relative to baseDir. Empty paths stay empty.
func resolvePath(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

// listenFromIssuer derives host:port from the issuer URL, or returns "" when it cannot.
func listenFromIssuer(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return ""
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
