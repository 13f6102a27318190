package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// FieldError is one problem with one key of the config file.
type FieldError struct {
	// Path locates the key: "issuer", "clients[1].scopes", "authorization_details_types.trade_order.schema".
	Path string
	// Message says what is wrong.
	Message string
}

// Error returns "path: message".
func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// ValidationErrors is every problem Validate found, in a stable order: the order of the keys in
// [Config], list entries by index, authorization_details_types by name.
type ValidationErrors []FieldError

// Error returns one problem per line.
func (e ValidationErrors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Algorithms and methods the server implements.
var (
	authMethods        = []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	deliveryModes      = []string{"poll", "ping", "push"}
	requestSigningAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}
	idTokenAlgs        = []string{"RS256", "ES256", "PS256"}
	logLevels          = []string{"debug", "info", "warn", "error"}
	logFormats         = []string{"text", "json"}
	storageDrivers     = []string{"sqlite", "postgres"}
	sqliteSyncModes    = []string{"full", "normal"}
)

// detailTypeName is what an authorization_details type name may look like: a word or a URI.
var detailTypeName = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)

// validator collects problems.
type validator struct{ errs ValidationErrors }

func (v *validator) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// One problem per line: fold multi-line messages (schema compiler errors).
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ")), " ")
	v.errs = append(v.errs, FieldError{Path: path, Message: msg})
}

func (v *validator) oneOf(path, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.add(path, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

// Validate checks the configuration and returns every problem at once as [ValidationErrors], or
// nil. It expects a Config from [Parse] or [Dev], with defaults applied. It reads the filesystem
// only to check that the TLS files exist.
//
// The issuer must end with "/": endpoints are appended to it, and it is compared byte for byte by
// clients, so Validate asks for it to be written that way rather than silently adding the slash.
func (c *Config) Validate() error {
	v := &validator{}
	issuerOK := c.validateIssuer(v)
	c.validateServer(v, issuerOK)
	c.validateUsers(v)
	c.validateClients(v)
	c.validateDetailTypes(v)
	c.validateNotifications(v)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (c *Config) validateIssuer(v *validator) bool {
	n := len(v.errs)
	if c.Issuer == "" {
		v.add("issuer", "required: the server's public URL, such as https://auth.example.com/")
		return false
	}
	u, err := url.Parse(c.Issuer)
	if err != nil {
		v.add("issuer", "not a valid URL: %v", err)
		return false
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		v.add("issuer", "must be an absolute http or https URL, such as https://auth.example.com/")
		return false
	}
	if u.User != nil {
		v.add("issuer", "must not contain a user name or password")
	}
	if u.RawQuery != "" || u.ForceQuery || strings.Contains(c.Issuer, "#") {
		v.add("issuer", "must not have a query or fragment")
	} else if !strings.HasSuffix(c.Issuer, "/") {
		v.add("issuer", "must end with \"/\" (write %s/)", c.Issuer)
	}
	return len(v.errs) == n
}

func (c *Config) validateServer(v *validator, issuerOK bool) {
	if c.Listen != "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 || strings.ContainsAny(host, " /") {
			v.add("listen", "%q is not host:port, such as 127.0.0.1:8080 or :8080", c.Listen)
		}
	} else if issuerOK {
		v.add("listen", "required")
	}
	if c.DataDir == "" {
		v.add("data_dir", "required")
	}

	if c.TLS != nil {
		for _, f := range []struct{ key, path string }{{"cert_file", c.TLS.CertFile}, {"key_file", c.TLS.KeyFile}} {
			if f.path == "" {
				v.add("tls."+f.key, "required when tls is set")
				continue
			}
			if err := readable(f.path); err != nil {
				v.add("tls."+f.key, "%v", err)
			}
		}
	}

	v.oneOf("storage.driver", c.Storage.Driver, storageDrivers)
	switch c.Storage.Driver {
	case "postgres":
		if c.Storage.DSN == "" {
			v.add("storage.dsn", "required for the postgres driver (set dsn or dsn_file)")
		}
		if c.Storage.SQLiteSynchronous != "" {
			v.add("storage.sqlite_synchronous", "only used with the sqlite driver")
		}
	case "sqlite":
		if c.Storage.DSN != "" {
			v.add("storage.dsn", "only used with the postgres driver (did you mean driver: postgres?)")
		}
		v.oneOf("storage.sqlite_synchronous", c.Storage.SQLiteSynchronous, sqliteSyncModes)
	}

	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)

	for _, d := range []struct {
		path string
		d    Duration
	}{
		{"tokens.access_token_ttl", c.Tokens.AccessTokenTTL},
		{"tokens.id_token_ttl", c.Tokens.IDTokenTTL},
		{"tokens.refresh_token_ttl", c.Tokens.RefreshTokenTTL},
		{"ciba.default_expiry", c.CIBA.DefaultExpiry},
		{"ciba.max_expiry", c.CIBA.MaxExpiry},
		{"ciba.poll_interval", c.CIBA.PollInterval},
		{"ciba.slow_down_step", c.CIBA.SlowDownStep},
		{"ciba.max_long_poll", c.CIBA.MaxLongPoll},
		{"limits.enrollment_ttl", c.Limits.EnrollmentTTL},
	} {
		if d.d.Duration <= 0 {
			v.add(d.path, "must be positive, got %s", d.d)
		}
	}
	if d := c.CIBA.SlowDownStep.Duration; d > 0 && d < 5*time.Second {
		v.add("ciba.slow_down_step", "must be at least 5s (CIBA section 11), got %s", c.CIBA.SlowDownStep)
	}
	if c.CIBA.DefaultExpiry.Duration > c.CIBA.MaxExpiry.Duration && c.CIBA.MaxExpiry.Duration > 0 {
		v.add("ciba.default_expiry", "%s is more than ciba.max_expiry (%s)", c.CIBA.DefaultExpiry, c.CIBA.MaxExpiry)
	}
	if c.Limits.MaxPendingPerUser < 1 {
		v.add("limits.max_pending_per_user", "must be at least 1, got %d", c.Limits.MaxPendingPerUser)
	}
	if c.Limits.MaxRequestsPerMinutePerUser < 1 {
		v.add("limits.max_requests_per_minute_per_user", "must be at least 1, got %d", c.Limits.MaxRequestsPerMinutePerUser)
	}
}

func (c *Config) validateUsers(v *validator) {
	subs := map[string]int{}
	emails := map[string]int{}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		if u.Sub == "" {
			v.add(p+".sub", "required")
		} else if j, dup := subs[u.Sub]; dup {
			v.add(p+".sub", "%q is already used by users[%d]", u.Sub, j)
		} else {
			subs[u.Sub] = i
		}
		if u.Email == "" {
			continue
		}
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email || a.Name != "" {
			v.add(p+".email", "%q is not an email address such as alice@example.com", u.Email)
			continue
		}
		key := strings.ToLower(u.Email)
		if j, dup := emails[key]; dup {
			v.add(p+".email", "%q is already used by users[%d] (emails are compared ignoring case)", u.Email, j)
			continue
		}
		emails[key] = i
	}
	// A login_hint may be a subject or an email: one user's sub must not be another user's email.
	for i, u := range c.Users {
		if j, ok := emails[strings.ToLower(u.Sub)]; ok && j != i {
			v.add(fmt.Sprintf("users[%d].sub", i), "%q is the email of users[%d], so a login_hint naming it would be ambiguous", u.Sub, j)
		}
	}
}

func (c *Config) validateClients(v *validator) {
	ids := map[string]int{}
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		if cl.ClientID == "" {
			v.add(p+".client_id", "required")
		} else if j, dup := ids[cl.ClientID]; dup {
			v.add(p+".client_id", "%q is already used by clients[%d]", cl.ClientID, j)
		} else {
			ids[cl.ClientID] = i
		}
		c.validateClientAuth(v, p, cl)

		mode := cl.BackchannelTokenDeliveryMode
		v.oneOf(p+".backchannel_token_delivery_mode", mode, deliveryModes)
		endpoint := p + ".backchannel_client_notification_endpoint"
		if cl.BackchannelClientNotificationEndpoint != "" {
			c.checkClientURL(v, endpoint, cl.BackchannelClientNotificationEndpoint)
		} else if mode == "ping" || mode == "push" {
			v.add(endpoint, "required for %s delivery", mode)
		}

		if alg := cl.BackchannelAuthenticationRequestSigningAlg; alg != "" {
			path := p + ".backchannel_authentication_request_signing_alg"
			v.oneOf(path, alg, requestSigningAlgs)
			if len(cl.JWKS) == 0 && cl.JWKSURI == "" {
				v.add(path, "needs jwks or jwks_uri to verify the signed requests")
			}
		}
		if alg := cl.IDTokenSignedResponseAlg; alg != "" {
			v.oneOf(p+".id_token_signed_response_alg", alg, idTokenAlgs)
		}

		for j, t := range cl.AuthorizationDetailsTypes {
			if _, ok := c.AuthorizationDetailsTypes[t]; !ok {
				v.add(fmt.Sprintf("%s.authorization_details_types[%d]", p, j), "%q is not defined in the top-level authorization_details_types", t)
			}
		}

		for j, s := range cl.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				v.add(fmt.Sprintf("%s.scopes[%d]", p, j), "%q is not a scope token", s)
			}
		}
		if !slices.Contains(cl.Scopes, "openid") {
			v.add(p+".scopes", "must include openid")
		}
		if slices.Contains(cl.Scopes, "offline_access") && !cl.RefreshTokens {
			v.add(p+".scopes", "offline_access needs refresh_tokens: true")
		}
		if cl.AccessTokenTTL.Duration < 0 {
			v.add(p+".access_token_ttl", "must not be negative, got %s", cl.AccessTokenTTL)
		}
	}
}

func (c *Config) validateClientAuth(v *validator, p string, cl Client) {
	hasSecret := cl.ClientSecret != ""
	hasJWKS := len(cl.JWKS) > 0
	hasURI := cl.JWKSURI != ""
	if hasJWKS {
		checkJWKS(v, p+".jwks", cl.JWKS)
	}
	if hasURI {
		c.checkClientURL(v, p+".jwks_uri", cl.JWKSURI)
	}
	if hasJWKS && hasURI {
		v.add(p+".jwks_uri", "set either jwks or jwks_uri, not both")
	}
	switch m := cl.TokenEndpointAuthMethod; m {
	case "":
		if !hasSecret && !hasJWKS && !hasURI {
			v.add(p+".client_secret", "required, unless the client authenticates with private_key_jwt (set jwks or jwks_uri)")
		}
	case "client_secret_basic", "client_secret_post":
		if !hasSecret {
			v.add(p+".client_secret", "required for %s", m)
		}
	case "private_key_jwt":
		if !hasJWKS && !hasURI {
			v.add(p+".jwks", "jwks or jwks_uri is required for private_key_jwt")
		}
		if hasSecret {
			v.add(p+".client_secret", "not used with private_key_jwt: remove it")
		}
	default:
		v.oneOf(p+".token_endpoint_auth_method", m, authMethods)
	}
}

// checkJWKS checks that raw is a JWK set of public keys: {"keys": [{"kty": ...}, ...]}.
func checkJWKS(v *validator, path string, raw json.RawMessage) {
	var set map[string]json.RawMessage
	var keys []map[string]any
	if json.Unmarshal(raw, &set) != nil || set == nil || json.Unmarshal(set["keys"], &keys) != nil || keys == nil {
		v.add(path, `must be a JWK set: an object with a "keys" array`)
		return
	}
	if len(keys) == 0 {
		v.add(path, `"keys" is empty`)
	}
	for i, k := range keys {
		kp := fmt.Sprintf("%s.keys[%d]", path, i)
		if kty, _ := k["kty"].(string); kty == "" {
			v.add(kp, `must be a JWK with a "kty"`)
		}
		if _, ok := k["d"]; ok {
			v.add(kp, "holds a private key: register only the public key")
		} else if _, ok := k["k"]; ok {
			v.add(kp, "holds a symmetric key: register only public keys")
		}
	}
}

// checkClientURL checks a URL the server calls or fetches (notification endpoint, jwks_uri): absolute,
// no fragment, https; http only for loopback hosts or when the issuer itself is http.
func (c *Config) checkClientURL(v *validator, path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		v.add(path, "must be an absolute https URL")
		return
	}
	if strings.Contains(raw, "#") {
		v.add(path, "must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) && !c.issuerIsHTTP() {
			v.add(path, "http is allowed only for loopback hosts or when the issuer is http")
		}
	default:
		v.add(path, "must be an https URL, got scheme %q", u.Scheme)
	}
}

// issuerIsHTTP reports whether the issuer is a plain http URL (a development setup).
func (c *Config) issuerIsHTTP() bool {
	u, err := url.Parse(c.Issuer)
	return err == nil && u.Scheme == "http"
}

// isLoopback reports whether host is localhost or a loopback address (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateDetailTypes(v *validator) {
	names := make([]string, 0, len(c.AuthorizationDetailsTypes))
	for name := range c.AuthorizationDetailsTypes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := c.AuthorizationDetailsTypes[name]
		p := mapPath("authorization_details_types", name)
		if !detailTypeName.MatchString(name) {
			v.add(p, "the name must match %s", detailTypeName)
		}
		if t.Display != "" {
			if _, err := t.ParseDisplay(name); err != nil {
				v.add(p+".display", "%v", err)
			}
		}
		if len(t.Schema) == 0 {
			v.add(p+".schema", "required: a JSON Schema for the type's objects")
			continue
		}
		if _, err := t.CompileSchema(name); err != nil {
			v.add(p+".schema", "%v", err)
		}
	}
}

// ParseDisplay parses the display template, named after the type. Templates may use only the
// builtin functions of text/template.
func (t DetailType) ParseDisplay(name string) (*template.Template, error) {
	return template.New(name).Parse(t.Display)
}

// CompileSchema compiles the type's JSON Schema (draft 2020-12 unless the schema says otherwise
// with $schema). The schema must describe an object ("type": "object" at the top level). It may
// not reference external documents: $ref works only within the schema itself.
func (t DetailType) CompileSchema(name string) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(t.Schema))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	obj, _ := doc.(map[string]any)
	if obj == nil || obj["type"] != "object" {
		return nil, errors.New(`must describe an object ("type": "object" at the top level)`)
	}
	loc := "urn:countersign:authorization_details_type:" + url.PathEscape(name)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, schemaError(err)
	}
	return sch, nil
}

// schemaError shortens the compiler's report that a schema is not a valid JSON Schema to its
// leaf problems: "at /properties/a/type: value must be one of ...; at ...".
func schemaError(err error) error {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if !errors.As(err, &sve) || !errors.As(sve.Err, &ve) {
		return err
	}
	var msgs []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			u := e.BasicOutput()
			if u.Error != nil {
				msgs = append(msgs, fmt.Sprintf("at %s: %s", cmp.Or(u.InstanceLocation, "/"), u.Error))
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(msgs) == 0 {
		return err
	}
	slices.Sort(msgs)
	msgs = slices.Compact(msgs)
	return errors.New("not a valid JSON Schema: " + strings.Join(msgs, "; "))
}

// noLoader refuses to load external schemas, so a schema in the config never reads files or the
// network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("external schema references are not supported")
}

// readable returns an error unless path is a file that can be opened.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// channelNames are the notification channels.
var channelNames = []string{"webpush", "email", "sms", "webhook"}

func (c *Config) validateNotifications(v *validator) {
	n := c.Notifications
	configured := map[string]bool{"webpush": true, "email": n.Email != nil, "sms": n.SMS != nil, "webhook": n.Webhook != nil}
	checkChannels := func(path string, list []string) {
		for i, ch := range list {
			p := fmt.Sprintf("%s[%d]", path, i)
			if !slices.Contains(channelNames, ch) {
				v.add(p, "%q is not one of %s", ch, strings.Join(channelNames, ", "))
			} else if !configured[ch] {
				v.add(p, "channel %s is not configured (add notifications.%s)", ch, ch)
			}
		}
	}
	// Defaults may name channels that are not configured: they are skipped, so that the default
	// [webpush, email] works without an SMTP server.
	for i, ch := range n.DefaultChannels {
		if !slices.Contains(channelNames, ch) {
			v.add(fmt.Sprintf("notifications.default_channels[%d]", i), "%q is not one of %s", ch, strings.Join(channelNames, ", "))
		}
	}
	for i, u := range c.Users {
		checkChannels(fmt.Sprintf("users[%d].channels", i), u.Channels)
		if u.Phone != "" && !e164.MatchString(u.Phone) {
			v.add(fmt.Sprintf("users[%d].phone", i), "must be an E.164 number such as +15551234567")
		}
		if slices.Contains(u.Channels, "sms") && u.Phone == "" {
			v.add(fmt.Sprintf("users[%d].phone", i), "required for the sms channel")
		}
	}
	if s := n.WebPush.Subscriber; s != "" && !strings.HasPrefix(s, "mailto:") && !strings.HasPrefix(s, "https://") {
		v.add("notifications.webpush.subscriber", "must be a mailto: or https: URL")
	}
	if e := n.Email; e != nil {
		if e.Host == "" {
			v.add("notifications.email.host", "required")
		}
		v.oneOf("notifications.email.security", e.Security, []string{"starttls", "tls", "none"})
		if e.Security == "none" && !isLoopback(e.Host) {
			v.add("notifications.email.security", "none is allowed only for a loopback host")
		}
		if e.Port < 1 || e.Port > 65535 {
			v.add("notifications.email.port", "must be a port number, got %d", e.Port)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			v.add("notifications.email.from", "must be an email address: %v", err)
		}
		if (e.Username == "") != (e.Password == "") {
			v.add("notifications.email.password", "username and password go together")
		}
	}
	if s := n.SMS; s != nil {
		for _, f := range []struct{ key, val string }{{"account_sid", s.AccountSID}, {"auth_token", s.AuthToken}, {"from", s.From}} {
			if f.val == "" {
				v.add("notifications.sms."+f.key, "required")
			}
		}
		c.checkClientURL(v, "notifications.sms.base_url", s.BaseURL)
	}
	for _, w := range []struct {
		path string
		hook *Webhook
	}{{"notifications.webhook", n.Webhook}, {"notifications.operator_webhook", n.OperatorWebhook}} {
		if w.hook == nil {
			continue
		}
		c.checkClientURL(v, w.path+".url", w.hook.URL)
		if len(w.hook.Secret) < 16 {
			v.add(w.path+".secret", "required, at least 16 characters (it signs every delivery)")
		}
	}
	if n.ReminderBefore.Duration < 0 {
		v.add("notifications.reminder_before", "must not be negative")
	}
	if c.Limits.ReportHold.Duration <= 0 {
		v.add("limits.report_hold", "must be positive, got %s", c.Limits.ReportHold)
	}
}

// e164 is an international phone number.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
