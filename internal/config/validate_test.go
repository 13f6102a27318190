package config

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	publicJWKS  = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	privateJWKS = `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}`
	schemaTrue  = `{"type":"object"}`
)

// validationErrors runs Validate and returns its ValidationErrors (nil when valid).
func validationErrors(t *testing.T, c *Config) ValidationErrors {
	t.Helper()
	err := c.Validate()
	if err == nil {
		return nil
	}
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("Validate returned %T (%v), want ValidationErrors", err, err)
	}
	return verrs
}

func paths(errs ValidationErrors) []string {
	var p []string
	for _, e := range errs {
		p = append(p, e.Path)
	}
	return p
}

// TestValidate_Rules breaks the valid example in one way per case and checks that exactly the
// expected key is reported, with a message containing the expected text.
func TestValidate_Rules(t *testing.T) {
	t.Parallel()
	tlsDir := t.TempDir()
	cert := writeFile(t, tlsDir, "cert.pem", "cert")
	key := writeFile(t, tlsDir, "key.pem", "key")
	https := func(c *Config) { c.Issuer = "https://auth.example.com/" }

	tests := []struct {
		name   string
		mutate func(c *Config)
		path   string
		msg    string
	}{
		// issuer
		{"issuer is required", func(c *Config) { c.Issuer = "" }, "issuer", "required"},
		{"issuer must be absolute", func(c *Config) { c.Issuer = "/auth/" }, "issuer", "absolute http or https URL"},
		{"issuer must be http or https", func(c *Config) { c.Issuer = "ftp://auth.example.com/" }, "issuer", "absolute http or https URL"},
		{"issuer must parse", func(c *Config) { c.Issuer = "http://[::1/" }, "issuer", "not a valid URL"},
		{"issuer has no query", func(c *Config) { c.Issuer = "https://auth.example.com/?tenant=a" }, "issuer", "must not have a query or fragment"},
		{"issuer has no empty query", func(c *Config) { c.Issuer = "https://auth.example.com/?" }, "issuer", "must not have a query or fragment"},
		{"issuer has no fragment", func(c *Config) { c.Issuer = "https://auth.example.com/#x" }, "issuer", "must not have a query or fragment"},
		{"issuer has no user info", func(c *Config) { c.Issuer = "https://u:p@auth.example.com/" }, "issuer", "user name or password"},
		{"issuer ends with a slash", func(c *Config) { c.Issuer = "https://auth.example.com" }, "issuer", `must end with "/" (write https://auth.example.com/)`},
		{"issuer with a path ends with a slash", func(c *Config) { c.Issuer = "https://example.com/auth" }, "issuer", `must end with "/"`},

		// server
		{"listen is required", func(c *Config) { c.Listen = "" }, "listen", "required"},
		{"listen needs a port", func(c *Config) { c.Listen = "localhost" }, "listen", "not host:port"},
		{"listen port is a number", func(c *Config) { c.Listen = "localhost:http" }, "listen", "not host:port"},
		{"listen port is in range", func(c *Config) { c.Listen = "127.0.0.1:65536" }, "listen", "not host:port"},
		{"data_dir is required", func(c *Config) { c.DataDir = "" }, "data_dir", "required"},
		{"tls needs a cert", func(c *Config) { c.TLS = &TLS{KeyFile: key} }, "tls.cert_file", "required when tls is set"},
		{"tls needs a key", func(c *Config) { c.TLS = &TLS{CertFile: cert} }, "tls.key_file", "required when tls is set"},
		{"tls cert exists", func(c *Config) { c.TLS = &TLS{CertFile: filepath.Join(tlsDir, "nope.pem"), KeyFile: key} }, "tls.cert_file", "no such file"},
		{"tls key is a file", func(c *Config) { c.TLS = &TLS{CertFile: cert, KeyFile: tlsDir} }, "tls.key_file", "is a directory"},
		{"storage driver is known", func(c *Config) { c.Storage = Storage{Driver: "mysql"} }, "storage.driver", `"mysql" is not one of sqlite, postgres`},
		{"postgres needs a dsn", func(c *Config) { c.Storage = Storage{Driver: "postgres"} }, "storage.dsn", "required for the postgres driver"},
		{"sqlite takes no dsn", func(c *Config) { c.Storage.DSN = "postgres://db" }, "storage.dsn", "only used with the postgres driver"},
		{"postgres takes no sqlite_synchronous", func(c *Config) { c.Storage.Driver, c.Storage.DSN = "postgres", "postgres://db" }, "storage.sqlite_synchronous", "only used with the sqlite driver"},
		{"sqlite_synchronous is full or normal", func(c *Config) { c.Storage.SQLiteSynchronous = "off" }, "storage.sqlite_synchronous", `"off" is not one of full, normal`},
		{"log level is known", func(c *Config) { c.Log.Level = "trace" }, "log.level", "not one of debug, info, warn, error"},
		{"log format is known", func(c *Config) { c.Log.Format = "xml" }, "log.format", "not one of text, json"},
		{"access token ttl is positive", func(c *Config) { c.Tokens.AccessTokenTTL.Duration = -time.Second }, "tokens.access_token_ttl", "must be positive"},
		{"id token ttl is positive", func(c *Config) { c.Tokens.IDTokenTTL.Duration = 0 }, "tokens.id_token_ttl", "must be positive"},
		{"refresh token ttl is positive", func(c *Config) { c.Tokens.RefreshTokenTTL.Duration = -1 }, "tokens.refresh_token_ttl", "must be positive"},
		{"default expiry is positive", func(c *Config) { c.CIBA.DefaultExpiry.Duration = -time.Second }, "ciba.default_expiry", "must be positive, got -1s"},
		{"max expiry is positive", func(c *Config) { c.CIBA.MaxExpiry.Duration = -time.Hour }, "ciba.max_expiry", "must be positive"},
		{"poll interval is positive", func(c *Config) { c.CIBA.PollInterval.Duration = -1 }, "ciba.poll_interval", "must be positive"},
		{"slow down step is positive", func(c *Config) { c.CIBA.SlowDownStep.Duration = -1 }, "ciba.slow_down_step", "must be positive"},
		{"slow down step is at least 5s", func(c *Config) { c.CIBA.SlowDownStep.Duration = time.Second }, "ciba.slow_down_step", "must be at least 5s (CIBA section 11), got 1s"},
		{"max long poll is positive", func(c *Config) { c.CIBA.MaxLongPoll.Duration = -1 }, "ciba.max_long_poll", "must be positive"},
		{"default expiry is at most max expiry", func(c *Config) { c.CIBA.DefaultExpiry.Duration = 73 * time.Hour }, "ciba.default_expiry", "73h0m0s is more than ciba.max_expiry (72h0m0s)"},
		{"enrollment ttl is positive", func(c *Config) { c.Limits.EnrollmentTTL.Duration = -1 }, "limits.enrollment_ttl", "must be positive"},
		{"max pending is at least 1", func(c *Config) { c.Limits.MaxPendingPerUser = -1 }, "limits.max_pending_per_user", "at least 1"},
		{"max requests per minute is at least 1", func(c *Config) { c.Limits.MaxRequestsPerMinutePerUser = 0 }, "limits.max_requests_per_minute_per_user", "at least 1"},

		// users
		{"user sub is required", func(c *Config) { c.Users[0].Sub = "" }, "users[0].sub", "required"},
		{"user sub is unique", func(c *Config) { c.Users = append(c.Users, User{Sub: "alice"}) }, "users[1].sub", `"alice" is already used by users[0]`},
		{"user email is an address", func(c *Config) { c.Users[0].Email = "alice" }, "users[0].email", "not an email address"},
		{"user email has no display name", func(c *Config) { c.Users[0].Email = "Alice <alice@example.com>" }, "users[0].email", "not an email address"},
		{"user email is unique ignoring case", func(c *Config) { c.Users = append(c.Users, User{Sub: "bob", Email: "Alice@Example.com"}) }, "users[1].email", "already used by users[0]"},
		{"user sub is not another user's email", func(c *Config) { c.Users = append(c.Users, User{Sub: "ALICE@example.com"}) }, "users[1].sub", "ambiguous"},

		// clients: identity and authentication
		{"client id is required", func(c *Config) { c.Clients[1].ClientID = "" }, "clients[1].client_id", "required"},
		{"client id is unique", func(c *Config) { c.Clients[1].ClientID = "agent" }, "clients[1].client_id", `"agent" is already used by clients[0]`},
		{"a client can authenticate", func(c *Config) { c.Clients[0].ClientSecret = "" }, "clients[0].client_secret", "required, unless the client authenticates with private_key_jwt"},
		{"client_secret_basic needs a secret", func(c *Config) {
			c.Clients[0].ClientSecret, c.Clients[0].JWKS, c.Clients[0].TokenEndpointAuthMethod = "", json.RawMessage(publicJWKS), "client_secret_basic"
		}, "clients[0].client_secret", "required for client_secret_basic"},
		{"client_secret_post needs a secret", func(c *Config) {
			c.Clients[0].ClientSecret, c.Clients[0].TokenEndpointAuthMethod = "", "client_secret_post"
		}, "clients[0].client_secret", "required for client_secret_post"},
		{"private_key_jwt needs keys", func(c *Config) {
			c.Clients[0].ClientSecret, c.Clients[0].TokenEndpointAuthMethod = "", "private_key_jwt"
		}, "clients[0].jwks", "jwks or jwks_uri is required for private_key_jwt"},
		{"private_key_jwt takes no secret", func(c *Config) {
			c.Clients[0].JWKS, c.Clients[0].TokenEndpointAuthMethod = json.RawMessage(publicJWKS), "private_key_jwt"
		}, "clients[0].client_secret", "not used with private_key_jwt"},
		{"auth method is known", func(c *Config) { c.Clients[0].TokenEndpointAuthMethod = "client_secret_jwt" }, "clients[0].token_endpoint_auth_method",
			`"client_secret_jwt" is not one of client_secret_basic, client_secret_post, private_key_jwt`},
		{"jwks or jwks_uri, not both", func(c *Config) {
			c.Clients[0].JWKS, c.Clients[0].JWKSURI = json.RawMessage(publicJWKS), "https://agent.example.com/jwks.json"
		}, "clients[0].jwks_uri", "set either jwks or jwks_uri, not both"},
		{"jwks is an object", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`[1]`) }, "clients[0].jwks", `must be a JWK set: an object with a "keys" array`},
		{"jwks has keys", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`{"kty":"EC"}`) }, "clients[0].jwks", `must be a JWK set`},
		{"jwks keys is an array", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`{"keys":{}}`) }, "clients[0].jwks", `must be a JWK set`},
		{"jwks has at least one key", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`{"keys":[]}`) }, "clients[0].jwks", `"keys" is empty`},
		{"jwks keys have a kty", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`{"keys":[{"kty":"EC"},{"x":"a"}]}`) }, "clients[0].jwks.keys[1]", `must be a JWK with a "kty"`},
		{"jwks holds no private key", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(privateJWKS) }, "clients[0].jwks.keys[0]", "holds a private key"},
		{"jwks holds no symmetric key", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) }, "clients[0].jwks.keys[0]", "holds a symmetric key"},
		{"jwks_uri is absolute", func(c *Config) { c.Clients[0].JWKSURI = "/jwks.json" }, "clients[0].jwks_uri", "must be an absolute https URL"},
		{"jwks_uri is https", func(c *Config) { https(c); c.Clients[0].JWKSURI = "http://agent.example.com/jwks.json" }, "clients[0].jwks_uri",
			"http is allowed only for loopback hosts or when the issuer is http"},

		// clients: CIBA
		{"delivery mode is known", func(c *Config) { c.Clients[0].BackchannelTokenDeliveryMode = "pull" }, "clients[0].backchannel_token_delivery_mode", `"pull" is not one of poll, ping, push`},
		{"ping needs an endpoint", func(c *Config) { c.Clients[1].BackchannelClientNotificationEndpoint = "" }, "clients[1].backchannel_client_notification_endpoint", "required for ping delivery"},
		{"push needs an endpoint", func(c *Config) { c.Clients[0].BackchannelTokenDeliveryMode = "push" }, "clients[0].backchannel_client_notification_endpoint", "required for push delivery"},
		{"endpoint is absolute", func(c *Config) { c.Clients[1].BackchannelClientNotificationEndpoint = "/cb" }, "clients[1].backchannel_client_notification_endpoint", "must be an absolute https URL"},
		{"endpoint has no fragment", func(c *Config) { c.Clients[1].BackchannelClientNotificationEndpoint = "https://agent.example.com/cb#x" }, "clients[1].backchannel_client_notification_endpoint", "must not have a fragment"},
		{"endpoint is http or https", func(c *Config) { c.Clients[1].BackchannelClientNotificationEndpoint = "ftp://agent.example.com/cb" }, "clients[1].backchannel_client_notification_endpoint", `must be an https URL, got scheme "ftp"`},
		{"endpoint over http needs loopback or an http issuer", func(c *Config) {
			https(c)
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://agent.example.com/cb"
		}, "clients[1].backchannel_client_notification_endpoint", "http is allowed only for loopback hosts or when the issuer is http"},
		{"127.0.0.0/8 only is loopback", func(c *Config) {
			https(c)
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://128.0.0.1/cb"
		}, "clients[1].backchannel_client_notification_endpoint", "http is allowed only for loopback hosts"},
		{"request signing alg is known", func(c *Config) {
			c.Clients[0].JWKS, c.Clients[0].BackchannelAuthenticationRequestSigningAlg = json.RawMessage(publicJWKS), "HS256"
		}, "clients[0].backchannel_authentication_request_signing_alg", `"HS256" is not one of RS256, PS256, ES256, EdDSA`},
		{"request signing needs keys", func(c *Config) { c.Clients[0].BackchannelAuthenticationRequestSigningAlg = "ES256" }, "clients[0].backchannel_authentication_request_signing_alg", "needs jwks or jwks_uri"},
		{"id token alg is known", func(c *Config) { c.Clients[0].IDTokenSignedResponseAlg = "EdDSA" }, "clients[0].id_token_signed_response_alg", `"EdDSA" is not one of RS256, ES256, PS256`},

		// clients: what they may ask for
		{"detail types are defined", func(c *Config) { c.Clients[0].AuthorizationDetailsTypes[1] = "wire_transfer" }, "clients[0].authorization_details_types[1]",
			`"wire_transfer" is not defined in the top-level authorization_details_types`},
		{"scopes include openid", func(c *Config) { c.Clients[0].Scopes = []string{"profile"} }, "clients[0].scopes", "must include openid"},
		{"offline_access needs refresh tokens", func(c *Config) { c.Clients[0].Scopes = []string{"openid", "offline_access"} }, "clients[0].scopes", "offline_access needs refresh_tokens: true"},
		{"scopes are tokens", func(c *Config) { c.Clients[0].Scopes = []string{"openid", "read write"} }, "clients[0].scopes[1]", "not a scope token"},
		{"client access token ttl is not negative", func(c *Config) { c.Clients[0].AccessTokenTTL.Duration = -time.Minute }, "clients[0].access_token_ttl", "must not be negative"},

		// authorization_details_types
		{"detail type name is a word or URI", func(c *Config) {
			c.AuthorizationDetailsTypes["bad name"] = DetailType{Schema: json.RawMessage(schemaTrue)}
		},
			`authorization_details_types["bad name"]`, "the name must match ^[A-Za-z0-9_.:/-]+$"},
		{"display is a template", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Display: "{{.side", Schema: json.RawMessage(schemaTrue)}
		},
			"authorization_details_types.trade_order.display", "template: trade_order:1: unclosed action"},
		{"display uses known functions", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Display: "{{money .amount}}", Schema: json.RawMessage(schemaTrue)}
		}, "authorization_details_types.trade_order.display", `function "money" not defined`},
		{"schema is required", func(c *Config) { c.AuthorizationDetailsTypes["trade_order"] = DetailType{Display: "x"} }, "authorization_details_types.trade_order.schema", "required"},
		{"schema is JSON", func(c *Config) { c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{`)} }, "authorization_details_types.trade_order.schema", "not valid JSON"},
		{"schema compiles", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{"type":"object","properties":{"symbol":{"pattern":"("}}}`)}
		}, "authorization_details_types.trade_order.schema", "at /properties/symbol/pattern: '(' is not valid regex"},
		{"schema has known types", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"float"}}}`)}
		}, "authorization_details_types.trade_order.schema", "not a valid JSON Schema"},
		{"schema references nothing outside", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{"type":"object","properties":{"n":{"$ref":"file:///etc/passwd"}}}`)}
		}, "authorization_details_types.trade_order.schema", "external schema references are not supported"},
		{"schema describes an object", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{"type":"string"}`)}
		},
			"authorization_details_types.trade_order.schema", `must describe an object ("type": "object" at the top level)`},
		{"a boolean schema is not an object schema", func(c *Config) {
			c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`true`)}
		},
			"authorization_details_types.trade_order.schema", "must describe an object"},

		// notifications
		{"unknown channel", func(c *Config) { c.Users[0].Channels = []string{"pigeon"} }, "users[0].channels[0]", `"pigeon" is not one of`},
		{"channel must be configured", func(c *Config) { c.Users[0].Channels = []string{"email"} }, "users[0].channels[0]", "notifications.email"},
		{"sms needs a phone", func(c *Config) {
			c.Notifications.SMS = &SMS{BaseURL: "https://api.twilio.com", AccountSID: "AC1", AuthToken: "t", From: "+15550000000"}
			c.Users[0].Channels = []string{"sms"}
		}, "users[0].phone", "required for the sms channel"},
		{"phone is E.164", func(c *Config) { c.Users[0].Phone = "555-1234" }, "users[0].phone", "E.164"},
		{"email needs a host", func(c *Config) {
			c.Notifications.Email = &Email{Port: 587, Security: "starttls", From: "cs@example.com"}
		}, "notifications.email.host", "required"},
		{"plain SMTP only on loopback", func(c *Config) {
			c.Notifications.Email = &Email{Host: "smtp.example.com", Port: 25, Security: "none", From: "cs@example.com"}
		}, "notifications.email.security", "loopback"},
		{"email from is an address", func(c *Config) {
			c.Notifications.Email = &Email{Host: "smtp.example.com", Port: 587, Security: "starttls", From: "nobody"}
		}, "notifications.email.from", "email address"},
		{"webhook secret is long enough", func(c *Config) {
			c.Notifications.Webhook = &Webhook{URL: "https://hooks.example.com/x", Secret: "short"}
		}, "notifications.webhook.secret", "at least 16"},
		{"webhook over http only on loopback", func(c *Config) {
			https(c)
			c.Notifications.Webhook = &Webhook{URL: "http://hooks.example.com/x", Secret: "0123456789abcdef"}
		}, "notifications.webhook.url", "http is allowed only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := loadExample(t)
			tc.mutate(c)
			errs := validationErrors(t, c)
			if len(errs) != 1 || errs[0].Path != tc.path || !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("Validate() =\n%v\nwant exactly one error at %s containing %q", errs, tc.path, tc.msg)
			}
		})
	}
}

// TestValidate_Accepts checks configurations that are unusual but valid.
func TestValidate_Accepts(t *testing.T) {
	t.Parallel()
	tlsDir := t.TempDir()
	cert := writeFile(t, tlsDir, "cert.pem", "cert")
	key := writeFile(t, tlsDir, "key.pem", "key")

	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"the example as is", func(*Config) {}},
		{"an https issuer with a path", func(c *Config) { c.Issuer = "https://example.com/auth/" }},
		{"an https issuer and a loopback http endpoint", func(c *Config) { c.Issuer = "https://auth.example.com/" }},
		{"an https issuer and an http localhost endpoint", func(c *Config) {
			c.Issuer = "https://auth.example.com/"
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://localhost:9000/cb"
		}},
		{"an https issuer and an http ::1 endpoint", func(c *Config) {
			c.Issuer = "https://auth.example.com/"
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://[::1]:9000/cb"
		}},
		{"an https issuer and an http 127.1.2.3 endpoint", func(c *Config) {
			c.Issuer = "https://auth.example.com/"
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://127.1.2.3/cb"
		}},
		{"an http issuer and any http endpoint", func(c *Config) {
			c.Clients[1].BackchannelClientNotificationEndpoint = "http://agent.internal:9000/cb"
			c.Clients[1].BackchannelTokenDeliveryMode = "push"
		}},
		{"an endpoint with a query", func(c *Config) {
			c.Clients[1].BackchannelClientNotificationEndpoint = "https://agent.example.com/cb?tenant=a"
		}},
		{"an endpoint on a poll client", func(c *Config) { c.Clients[0].BackchannelClientNotificationEndpoint = "https://agent.example.com/cb" }},
		{"listen on all interfaces", func(c *Config) { c.Listen = ":8080" }},
		{"listen on a random port", func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{"tls with existing files", func(c *Config) { c.TLS = &TLS{CertFile: cert, KeyFile: key} }},
		{"postgres with a dsn", func(c *Config) { c.Storage = Storage{Driver: "postgres", DSN: "postgres://db/cs"} }},
		{"sqlite normal", func(c *Config) { c.Storage.SQLiteSynchronous = "normal" }},
		{"default expiry equal to max expiry", func(c *Config) { c.CIBA.DefaultExpiry = c.CIBA.MaxExpiry }},
		{"a user without email", func(c *Config) { c.Users = append(c.Users, User{Sub: "bob"}) }},
		{"a user whose sub is its own email", func(c *Config) { c.Users[0].Sub = "alice@example.com" }},
		{"no users, clients or types", func(c *Config) { c.Users, c.Clients, c.AuthorizationDetailsTypes = nil, nil, nil }},
		{"private_key_jwt with inline jwks", func(c *Config) {
			c.Clients[0].ClientSecret, c.Clients[0].TokenEndpointAuthMethod, c.Clients[0].JWKS = "", "private_key_jwt", json.RawMessage(publicJWKS)
		}},
		{"private_key_jwt with jwks_uri", func(c *Config) {
			c.Clients[0].ClientSecret, c.Clients[0].TokenEndpointAuthMethod, c.Clients[0].JWKSURI = "", "private_key_jwt", "https://agent.example.com/jwks.json"
		}},
		{"keys only, no method", func(c *Config) { c.Clients[0].ClientSecret, c.Clients[0].JWKS = "", json.RawMessage(publicJWKS) }},
		{"a secret and keys, no method", func(c *Config) { c.Clients[0].JWKS = json.RawMessage(publicJWKS) }},
		{"signed requests", func(c *Config) {
			c.Clients[0].JWKS, c.Clients[0].BackchannelAuthenticationRequestSigningAlg = json.RawMessage(publicJWKS), "EdDSA"
		}},
		{"an ID token algorithm", func(c *Config) { c.Clients[0].IDTokenSignedResponseAlg = "PS256" }},
		{"refresh tokens with offline_access", func(c *Config) {
			c.Clients[0].RefreshTokens, c.Clients[0].Scopes = true, []string{"openid", "offline_access"}
		}},
		{"refresh tokens without offline_access", func(c *Config) { c.Clients[0].RefreshTokens = true }},
		{"a URI detail type name", func(c *Config) {
			c.AuthorizationDetailsTypes["https://example.com/rar/payment-v1.0"] = DetailType{Schema: json.RawMessage(schemaTrue)}
		}},
		{"a detail type without display", func(c *Config) {
			c.AuthorizationDetailsTypes["plain"] = DetailType{Schema: json.RawMessage(schemaTrue)}
		}},
		{"a draft-07 schema", func(c *Config) {
			c.AuthorizationDetailsTypes["old"] = DetailType{Schema: json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`)}
		}},
		{"a schema with internal references", func(c *Config) {
			c.AuthorizationDetailsTypes["refs"] = DetailType{Schema: json.RawMessage(`{"type":"object","$defs":{"amt":{"type":"string"}},"properties":{"a":{"$ref":"#/$defs/amt"}}}`)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := loadExample(t)
			tc.mutate(c)
			if errs := validationErrors(t, c); errs != nil {
				t.Errorf("Validate() =\n%v\nwant no errors", errs)
			}
		})
	}
}

func TestValidate_ReportsEveryProblemAtOnceInOrder(t *testing.T) {
	t.Parallel()
	c := loadExample(t)
	c.Issuer = "https://auth.example.com"
	c.Storage.Driver = "mysql"
	c.CIBA.DefaultExpiry.Duration = 100 * time.Hour
	c.Users = append(c.Users, User{Sub: "alice", Email: "nope"})
	c.Clients[0].Scopes = []string{"email"}
	c.Clients[1].ClientID = ""
	c.Clients[1].BackchannelClientNotificationEndpoint = "http://agent.example.com/cb"
	c.AuthorizationDetailsTypes["z"] = DetailType{}
	c.AuthorizationDetailsTypes["a"] = DetailType{Display: "{{", Schema: json.RawMessage(`{"type":"array"}`)}

	want := []string{
		"issuer",
		"storage.driver",
		"ciba.default_expiry",
		"users[1].sub",
		"users[1].email",
		"clients[0].scopes",
		"clients[1].client_id",
		"clients[1].backchannel_client_notification_endpoint",
		"authorization_details_types.a.display",
		"authorization_details_types.a.schema",
		"authorization_details_types.z.schema",
	}
	errs := validationErrors(t, c)
	if got := paths(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("paths =\n%s\nwant\n%s\nerrors:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), errs)
	}
	// The same input gives the same report.
	if again := validationErrors(t, c); !reflect.DeepEqual(again, errs) {
		t.Errorf("second Validate differs:\n%v\nfirst:\n%v", again, errs)
	}
}

func TestValidationErrors_Error(t *testing.T) {
	t.Parallel()
	c := loadExample(t)
	c.Issuer = "https://auth.example.com/"
	c.Clients[1].BackchannelClientNotificationEndpoint = "http://agent.example.com/cb"
	c.Clients[1].Scopes = []string{"profile"}
	err := c.Validate()
	want := "clients[1].backchannel_client_notification_endpoint: http is allowed only for loopback hosts or when the issuer is http\n" +
		"clients[1].scopes: must include openid"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() error =\n%v\nwant\n%s", err, want)
	}
}

func TestValidate_MessagesAreOneLine(t *testing.T) {
	t.Parallel()
	c := loadExample(t)
	c.AuthorizationDetailsTypes["trade_order"] = DetailType{Schema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"nope"},"b":{"minimum":"x"}}}`)}
	for _, e := range validationErrors(t, c) {
		if strings.Contains(e.Message, "\n") {
			t.Errorf("%s: message spans lines: %q", e.Path, e.Message)
		}
	}
}

func TestValidate_AfterParse(t *testing.T) {
	t.Parallel()
	// A file whose only problems are found by Validate, with paths matching the file's keys.
	c := parse(t, `
issuer: https://auth.example.com/
clients:
  - client_id: a
    client_secret: s
    backchannel_token_delivery_mode: ping
    backchannel_client_notification_endpoint: http://agent.example.com/cb
authorization_details_types:
  "urn:example:pay":
    schema: {type: string}
`, t.TempDir())
	want := []string{
		"clients[0].backchannel_client_notification_endpoint",
		`authorization_details_types["urn:example:pay"].schema`,
	}
	if got := paths(validationErrors(t, c)); !reflect.DeepEqual(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}
}
