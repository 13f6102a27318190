package web

// Browser tests: the real countersign binary (built once, run with `countersign serve` and a config
// file), the web authenticator, and headless Chromium driven over the DevTools protocol with
// chromedp. An agent asks with plain net/http, exactly as curl would; the person answers in the
// browser.
//
//	go test -run TestBrowser -v ./web/
//	UPDATE_SCREENSHOTS=1 go test -run TestBrowser ./web/   # also rewrites docs/screenshots/*.png
//
// Chromium is Debian's /usr/bin/chromium (COUNTERSIGN_CHROMIUM overrides the path). Without it the
// test skips, unless COUNTERSIGN_REQUIRE_BROWSER is set (CI sets it), in which case it fails.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

const (
	requireBrowserEnv = "COUNTERSIGN_REQUIRE_BROWSER"
	chromiumEnv       = "COUNTERSIGN_CHROMIUM"
	screenshotsEnv    = "UPDATE_SCREENSHOTS"
)

var (
	tmpRoot   string // removed by TestMain
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "countersign-web-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// countersignBinary builds ./cmd/countersign once per test process (only when a browser test
// runs, so that the unit tests stay fast).
func countersignBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go tool is not on PATH: %w", err)
			return
		}
		binPath = filepath.Join(tmpRoot, "countersign")
		cmd := exec.Command(goTool, "build", "-o", binPath, "./cmd/countersign")
		cmd.Dir = ".." // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/countersign: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv(chromiumEnv), "/usr/bin/chromium", "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "headless Chromium is not installed (apt-get install -y chromium, or set " + chromiumEnv + ")"
	if os.Getenv(requireBrowserEnv) != "" {
		t.Fatal(msg + "; " + requireBrowserEnv + " is set, so this is a failure")
	}
	t.Skip(msg)
	return ""
}

// --- The server ---------------------------------------------------------------------------------

// testServer is `countersign serve` on 127.0.0.1:backend, fronted by a small proxy on the issuer's
// port (http://localhost:PORT/: localhost is a secure context, which WebCrypto, service workers
// and WebAuthn need). The proxy serves web.Handler() for GET /app/ and GET /enroll when the
// binary does not mount the app yet, and passes everything else through.
type testServer struct {
	bin, config string
	issuer      string // http://localhost:PORT/
	origin      string // http://localhost:PORT
	backend     string // http://127.0.0.1:PORT2
	mounted     bool   // the binary serves the web app itself
	logs        *syncBuffer
	offline     atomic.Bool // the front drops every connection, as an unreachable server would
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const testConfig = `issuer: {{ISSUER}}
listen: {{LISTEN}}
data_dir: {{DATA}}
log: {level: warn}
ciba: {poll_interval: 1s}
users:
  - {sub: alice, email: alice@example.com, name: Alice Example}
clients:
  - client_id: agent
    client_secret: agent-secret
    name: DemoTradePro Agent
    authorization_details_types: [trade_order, payment_initiation]
    audiences: [https://api.tradepro.example]
  - client_id: agent-nm
    client_secret: agent-nm-secret
    name: DemoTradePro Agent
    authorization_details_types: [trade_order]
    require_number_matching: true
  - client_id: agent-uv
    client_secret: agent-uv-secret
    name: DemoTradePro Agent
    authorization_details_types: [trade_order]
    require_user_verification: true
  - client_id: agent-report
    client_secret: agent-report-secret
    name: Unknown Shopping Bot
    authorization_details_types: [payment_initiation]
authorization_details_types:
  trade_order:
    display: "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})"
    schema:
      type: object
      required: [symbol, side, quantity]
      properties:
        symbol: {type: string, pattern: "^[A-Z.]{1,10}$"}
        side: {enum: [BUY, SELL]}
        quantity: {type: integer, minimum: 1}
        order_type: {enum: [market, limit], default: market}
        limit_price: {type: number}
  payment_initiation:
    display: "Pay {{.instructedAmount.amount}} {{.instructedAmount.currency}} to {{.creditorName}}"
    schema:
      type: object
      required: [instructedAmount, creditorName]
      properties:
        instructedAmount:
          type: object
          required: [currency, amount]
          properties: {currency: {type: string}, amount: {type: string}}
        creditorName: {type: string}
`

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(t *testing.T, bin string) *testServer {
	t.Helper()
	dir := t.TempDir()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := front.Addr().(*net.TCPAddr).Port
	backPort := freePort(t)
	s := &testServer{
		bin:     bin,
		config:  filepath.Join(dir, "countersign.yaml"),
		issuer:  fmt.Sprintf("http://localhost:%d/", port),
		origin:  fmt.Sprintf("http://localhost:%d", port),
		backend: fmt.Sprintf("http://127.0.0.1:%d", backPort),
		logs:    &syncBuffer{},
	}
	cfg := strings.NewReplacer("{{ISSUER}}", s.issuer, "{{LISTEN}}", fmt.Sprintf("127.0.0.1:%d", backPort),
		"{{DATA}}", filepath.Join(dir, "data")).Replace(testConfig)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", "--config", s.config)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("countersign serve output:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(s.backend + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("countersign serve exited:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("countersign serve did not become healthy: %v\n%s", err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Does the binary serve the app itself (internal/server mounts web.Handler())?
	if res, err := http.Get(s.backend + "/app/sw.js"); err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		s.mounted = res.StatusCode == http.StatusOK && bytes.Contains(body, []byte("countersign-shell"))
	}
	backendURL, _ := url.Parse(s.backend)
	proxy := httputil.NewSingleHostReverseProxy(backendURL)
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	if !s.mounted {
		t.Fatalf("the binary does not serve the web app at /app/\n%s", s.logs.String())
	}
	frontHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.offline.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: frontHandler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(front) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// run runs an admin command of the binary against the server's config.
func (s *testServer) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, append(args, "--config", s.config)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("countersign %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// invite returns a fresh enrollment URL for sub: the last line countersign users invite prints.
func (s *testServer) invite(t *testing.T, sub string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s.run(t, "users", "invite", sub)), "\n")
	link := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(link, s.issuer+"enroll#code=") {
		t.Fatalf("invite printed %q, want an enrollment URL under %s", link, s.issuer)
	}
	return link
}

// agent is a CIBA client, speaking plain HTTP as curl would.
type agent struct {
	s              *testServer
	id, secret     string
	client         *http.Client
	lastPoll       time.Time
	pollInterval   time.Duration
	lastAuthorized map[string]any
}

func (s *testServer) agent(id, secret string) *agent {
	return &agent{s: s, id: id, secret: secret, client: &http.Client{Timeout: 10 * time.Second}, pollInterval: time.Second}
}

func (a *agent) post(t *testing.T, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.s.backend+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.id, a.secret)
	res, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("POST %s: %d, body is not JSON: %v", path, res.StatusCode, err)
	}
	return res.StatusCode, body
}

// authorize makes a backchannel request for alice and returns the response (auth_req_id, ...).
func (a *agent) authorize(t *testing.T, bindingMessage, details string, extra url.Values) map[string]any {
	t.Helper()
	form := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {bindingMessage},
		"authorization_details": {details}}
	for k, v := range extra {
		form[k] = v
	}
	status, body := a.post(t, "/bc-authorize", form)
	if status != http.StatusOK {
		t.Fatalf("bc-authorize = %d %v", status, body)
	}
	a.lastAuthorized = body
	return body
}

// token polls the token endpoint once, respecting the interval.
func (a *agent) token(t *testing.T, authReqID string) (int, map[string]any) {
	t.Helper()
	if wait := time.Until(a.lastPoll.Add(a.pollInterval + 50*time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
	a.lastPoll = time.Now()
	return a.post(t, "/oauth/token", url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
}

// outcome polls until the request is no longer pending and returns the final answer.
func (a *agent) outcome(t *testing.T, authReqID string) (int, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body := a.token(t, authReqID)
		if body["error"] != "authorization_pending" {
			return status, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request is still pending after 15 s")
		}
	}
}

// jwtClaims decodes a JWT's payload without verifying it (the server's own tests do that).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// --- The browser --------------------------------------------------------------------------------

// page drives one tab.
type page struct {
	t   *testing.T
	ctx context.Context
	s   *testServer

	mu       sync.Mutex
	problems []string // console errors, CSP violations, uncaught exceptions
	console  []string // everything, logged when the test fails
}

func startBrowser(t *testing.T, chromium string, s *testServer) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	p := &page{t: t, ctx: ctx, s: s}
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(p.console, "\n"))
		}
	})
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			text := m.String()
			p.mu.Lock()
			p.console = append(p.console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, text))
			p.mu.Unlock()
			if m.IsException() || m.Type == "error" || strings.Contains(text, "Content Security Policy") ||
				strings.Contains(text, "Trusted Type") {
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, text))
				p.mu.Unlock()
			}
		}
	}()
	// Notifications are allowed for the app's origin (the test cannot click a permission prompt).
	_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: string(browser.PermissionTypeNotifications)},
		Setting:    browser.PermissionSettingGranted,
		Origin:     s.origin,
	})
	if err != nil {
		t.Fatalf("granting notifications: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	return p
}

// consoleProblems returns what the page logged as errors, minus the expected ones.
func (p *page) consoleProblems(ignore ...*regexp.Regexp) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
next:
	for _, m := range p.problems {
		for _, re := range ignore {
			if re.MatchString(m) {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes its value into T.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript expression (which may return a promise) until it is truthy. (Not
// chromedp.Poll, which compiles its predicate with new Function: our CSP rightly forbids that.)
func (p *page) wait(what, expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`Promise.resolve().then(() => (`+expr+`)).then((v) => !!v, () => false)`, chromedp.EvalAwaitPromise))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText : ''`))
			p.t.Fatalf("timed out after %s waiting for %s (%v); the page shows:\n%s", timeout, what, lastErr, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *page) click(selector string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.Click(chromedp.CSS(selector)))
}

// screenshot saves a full-page PNG under docs/screenshots when UPDATE_SCREENSHOTS is set.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv(screenshotsEnv) == "" {
		return
	}
	// Let the toast and the focus ring settle so the pictures are stable.
	_, _ = chromedp.Run(p.ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('toast').textContent = ''; document.activeElement && document.activeElement.blur()`))
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote docs/screenshots/%s.png (%d bytes)", name, len(buf))
}

// cardID waits for the pending card whose text contains text and returns its request id.
func (p *page) cardID(text string) string {
	p.t.Helper()
	js := `[...document.querySelectorAll('#pending-list .request-card')].find((li) => li.textContent.includes(` + jsString(text) + `))`
	p.wait("a pending card with "+strconv.Quote(text), js, 15*time.Second)
	return eval[string](p, js+`.dataset.id`)
}

// openRequest opens the request's detail from the pending list and waits for the decision buttons.
func (p *page) openRequest(text string) string {
	p.t.Helper()
	p.goTo("#/requests")
	id := p.cardID(text)
	p.click(`.request-card[data-id="` + id + `"] a`)
	p.wait("the request detail", `document.querySelector('#approve') && location.hash === '#/requests/`+id+`'`, 10*time.Second)
	return id
}

func (p *page) goTo(hash string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + jsString(hash)))
}

// waitDevicesView waits until every section of the devices view has loaded, so that nothing moves
// under a click.
func (p *page) waitDevicesView() {
	p.t.Helper()
	p.wait("the devices view", `location.hash === '#/devices' && document.querySelector('#device-list li .status-current') &&
		document.querySelector('#notifications p') && document.querySelector('#passkeys p')`, 10*time.Second)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// --- The test -----------------------------------------------------------------------------------

const (
	tradeAndPayment = `[{"type":"trade_order","symbol":"BRK.B","side":"SELL","quantity":5,"order_type":"limit","limit_price":135.50},` +
		`{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"12.00"},"creditorName":"Café Müller & Söhne"}]`
	buyNVDA = `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`
)

func TestBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	start := time.Now()
	s := startServer(t, countersignBinary(t))
	p := startBrowser(t, chromium, s)
	t.Logf("server and browser ready in %s (web app mounted by the binary: %v)", time.Since(start).Round(time.Millisecond), s.mounted)
	agent := s.agent("agent", "agent-secret")

	ok := t.Run("EnrollFromInvitationLink", func(t *testing.T) {
		p.t = t
		link := s.invite(t, "alice")
		p.do(chromedp.Navigate(link))
		p.wait("the enrollment form", `document.querySelector('#enroll-submit')`, 10*time.Second)
		if href := eval[string](p, `location.href`); strings.Contains(href, "code=") {
			t.Errorf("the invitation code is still in the address bar: %s", href)
		}
		if host := eval[string](p, `document.querySelector('#server-host').textContent`); host != strings.TrimPrefix(s.origin, "http://") {
			t.Errorf("the page shows server %q, want %q", host, strings.TrimPrefix(s.origin, "http://"))
		}
		if name := eval[string](p, `document.querySelector('#device-name').value`); !strings.HasPrefix(name, "Browser on ") {
			t.Errorf("default device name = %q, want Browser on <platform>", name)
		}
		p.do(chromedp.SetValue(chromedp.ID("device-name"), "Alice’s laptop"))
		p.screenshot("enroll")
		p.click("#enroll-submit")
		p.wait("the app after enrollment", `location.pathname === '/app/' && !document.querySelector('#tabs').hidden && document.querySelector('h1').textContent === 'Waiting for you'`, 10*time.Second)
		// The key is in IndexedDB and cannot be exported.
		key := eval[map[string]any](p, `import('./lib/store.js').then((m) => m.loadDevice(`+jsString(s.issuer)+`)).then((d) => ({
			sub: d.sub, deviceId: d.deviceId, extractable: d.privateKey.extractable, type: d.privateKey.type,
			algorithm: d.privateKey.algorithm.name + ' ' + d.privateKey.algorithm.namedCurve, usages: d.privateKey.usages.join(',') }))`)
		if key["sub"] != "alice" || key["extractable"] != false || key["type"] != "private" || key["algorithm"] != "ECDSA P-256" || key["usages"] != "sign" {
			t.Errorf("stored device key = %v, want alice's non-extractable ECDSA P-256 signing key", key)
		}
		if out := s.run(t, "users", "list"); !strings.Contains(out, "alice") {
			t.Errorf("users list:\n%s", out)
		}
	})
	if !ok {
		return
	}

	t.Run("CanonicalJSONVectorsInChromium", func(t *testing.T) {
		p.t = t
		raw, err := os.ReadFile("testdata/jcs-vectors.json")
		if err != nil {
			t.Fatal(err)
		}
		got := eval[[]map[string]any](p, `import('./lib/jcs.js').then((m) => Promise.all(`+string(raw)+`.map(async (v) => ({
			name: v.name, canonical: m.canonicalize(JSON.parse(v.shown)) === v.canonical,
			sha256: (await m.canonicalSHA256(JSON.parse(v.shown))) === v.sha256 }))))`)
		if len(got) != 3 {
			t.Fatalf("got %v", got)
		}
		for _, v := range got {
			if v["canonical"] != true || v["sha256"] != true {
				t.Errorf("vector %v: canonical JSON or hash differs from docs/device-api.md 8.4", v)
			}
		}
	})

	var sellID, sellAuthReq, buyAuthReq string
	t.Run("PendingListShowsNewRequestsOldestFirst", func(t *testing.T) {
		p.t = t
		sellAuthReq = agent.authorize(t, "Sell 5 BRK.B <limit> @ 135.50 €", tradeAndPayment,
			url.Values{"audience": {"https://api.tradepro.example"}})["auth_req_id"].(string)
		buyAuthReq = agent.authorize(t, "Buy 10 NVDA", buyNVDA, nil)["auth_req_id"].(string)
		sellID = p.cardID("Sell 5 BRK.B")
		p.cardID("Buy 10 NVDA")
		first := eval[string](p, `document.querySelector('#pending-list .request-card').textContent`)
		if !strings.Contains(first, "SELL 5 BRK.B (limit)") || !strings.Contains(first, "DemoTradePro Agent") {
			t.Errorf("first card = %q, want the older SELL request with its client", first)
		}
		if count := eval[string](p, `document.querySelector('#pending-count').textContent`); count != "2 waiting" {
			t.Errorf("tab badge = %q, want \"2 waiting\"", count)
		}
		if status, body := agent.token(t, sellAuthReq); status != http.StatusBadRequest || body["error"] != "authorization_pending" {
			t.Errorf("token before approval = %d %v, want authorization_pending", status, body)
		}
		p.screenshot("pending")
	})

	t.Run("ApproveAndTheAgentGetsItsToken", func(t *testing.T) {
		p.t = t
		if sellID == "" {
			t.Skip("no request")
		}
		p.openRequest("Sell 5 BRK.B")
		p.wait("Approve to be enabled", `!document.querySelector('#approve').disabled`, 5*time.Second)
		// Everything the user approves is on screen: client, message, each text, every field,
		// scope and audience.
		main := eval[string](p, `document.querySelector('main').innerText`)
		for _, want := range []string{
			"DemoTradePro Agent", "Sell 5 BRK.B <limit> @ 135.50 €", "SELL 5 BRK.B (limit)",
			"Pay 12.00 EUR to Café Müller & Söhne", "limit_price", "135.50", "instructedAmount.currency",
			"creditorName", "openid", "https://api.tradepro.example", "Expires in",
		} {
			if !strings.Contains(main, want) {
				t.Errorf("the detail view does not show %q:\n%s", want, main)
			}
		}
		if eval[bool](p, `!!document.querySelector('#integrity-error')`) {
			t.Errorf("the app reports an integrity problem on a genuine request:\n%s", main)
		}
		p.screenshot("request")
		p.click("#approve")
		p.wait("the approval", `document.querySelector('#result') && document.querySelector('#result').textContent.includes('Approved')`, 10*time.Second)
		status, body := agent.outcome(t, sellAuthReq)
		if status != http.StatusOK || body["access_token"] == nil {
			t.Fatalf("token after approval = %d %v", status, body)
		}
		claims := jwtClaims(t, body["access_token"].(string))
		approval, _ := claims["approval"].(map[string]any)
		if approval["request_id"] != sellID {
			t.Errorf("token approval claim = %v, want request %s", claims["approval"], sellID)
		}
		details, _ := claims["authorization_details"].([]any)
		if len(details) != 2 || details[0].(map[string]any)["limit_price"] != 135.5 {
			t.Errorf("token authorization_details = %v", claims["authorization_details"])
		}
	})

	t.Run("DenyAndTheAgentIsRefused", func(t *testing.T) {
		p.t = t
		if buyAuthReq == "" {
			t.Skip("no request")
		}
		p.openRequest("Buy 10 NVDA")
		p.wait("Deny to be enabled", `!document.querySelector('#deny').disabled`, 5*time.Second)
		p.click("#deny")
		p.wait("the denial", `document.querySelector('#result') && document.querySelector('#result').textContent.includes('Denied')`, 10*time.Second)
		if status, body := agent.outcome(t, buyAuthReq); status != http.StatusBadRequest || body["error"] != "access_denied" {
			t.Errorf("token after denial = %d %v, want 400 access_denied", status, body)
		}
	})

	t.Run("ExpiryCountdownDecreasesAndTheRequestGoes", func(t *testing.T) {
		p.t = t
		const lifetime = 8
		authReq := agent.authorize(t, "Quick: buy 1 NVDA", `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":1}]`,
			url.Values{"requested_expiry": {strconv.Itoa(lifetime)}})["auth_req_id"].(string)
		p.openRequest("Quick: buy 1 NVDA")
		timer := `document.querySelector('#timer [data-deadline-for]').textContent`
		first := eval[string](p, timer)
		p.wait("the countdown to move", timer+` !== `+jsString(first), 3*time.Second)
		second := eval[string](p, timer)
		if secs(t, second) >= secs(t, first) || secs(t, first) > lifetime {
			t.Errorf("countdown went from %q to %q, want it to decrease from at most %d s", first, second, lifetime)
		}
		p.wait("the request to expire on screen", timer+` === 'expired' && document.querySelector('#approve').disabled && document.querySelector('#deny').disabled`,
			time.Duration(lifetime+2)*time.Second)
		p.goTo("#/requests")
		p.wait("the pending list without it", `document.querySelector('h1').textContent === 'Waiting for you' && !document.querySelector('main').textContent.includes('Quick: buy 1 NVDA')`, 6*time.Second)
		// The app counts down from expires_in, which the server rounds down, so it may call the
		// request expired up to a second before the server does.
		if status, body := agent.outcome(t, authReq); body["error"] != "expired_token" {
			t.Errorf("token after expiry = %d %v, want expired_token", status, body)
		}
	})

	t.Run("HistoryShowsTheDecisions", func(t *testing.T) {
		p.t = t
		p.click(`#tabs a[data-route="history"]`)
		p.wait("three requests in the history", `document.querySelectorAll('#history-list li').length >= 3`, 10*time.Second)
		statuses := eval[[]string](p, `[...document.querySelectorAll('#history-list li')].map((li) => li.dataset.status)`)
		if strings.Join(statuses[:3], ",") != "expired,denied,approved" {
			t.Errorf("history statuses (newest first) = %v, want expired, denied, approved", statuses)
		}
		p.screenshot("history")
	})

	t.Run("DevicesListAndRemoveAnother", func(t *testing.T) {
		p.t = t
		// A second device: the terminal authenticator.
		cmd := exec.Command(s.bin, "device", "enroll", s.invite(t, "alice"), "--key", filepath.Join(t.TempDir(), "alice.key"), "--name", "Alice’s terminal")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("countersign device enroll: %v\n%s", err, out)
		}
		p.click(`#tabs a[data-route="devices"]`)
		p.waitDevicesView()
		p.wait("both devices", `document.querySelectorAll('#device-list li').length === 2`, 5*time.Second)
		text := eval[string](p, `document.querySelector('#device-list').innerText`)
		for _, want := range []string{"Alice’s laptop", "This browser", "web ·", "Alice’s terminal", "terminal ·"} {
			if !strings.Contains(text, want) {
				t.Errorf("device list does not show %q:\n%s", want, text)
			}
		}
		p.screenshot("devices")
		other := eval[string](p, `[...document.querySelectorAll('#device-list li')].find((li) => li.textContent.includes('terminal')).dataset.id`)
		p.click(`button[data-remove="` + other + `"]`)
		p.wait("the confirmation dialog", `document.querySelector('#confirm').open`, 3*time.Second)
		if title := eval[string](p, `document.querySelector('#confirm-title').textContent`); title != "Remove “Alice’s terminal”?" {
			t.Errorf("dialog title = %q", title)
		}
		p.click("#confirm-ok")
		p.wait("the terminal device to show as removed", `document.querySelector('#device-list li.removed[data-id="`+other+`"]') && !document.querySelector('button[data-remove="`+other+`"]')`, 5*time.Second)
	})

	t.Run("ServiceWorkerShowsOpensAndClearsPushNotifications", func(t *testing.T) {
		p.t = t
		p.goTo("#/requests")
		p.wait("an active service worker", `navigator.serviceWorker.ready.then((r) => r.active && r.active.state === 'activated' && navigator.serviceWorker.controller)`, 10*time.Second)
		authReq := agent.authorize(t, "Push: buy 2 NVDA", `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":2}]`, nil)["auth_req_id"].(string)
		id := p.cardID("Push: buy 2 NVDA")

		regs := chromedp.Events(p.ctx, serviceworker.WorkerRegistrationUpdated)
		if _, err := chromedp.Call(p.ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		found := make(chan serviceworker.RegistrationID, 1)
		go func() {
			for ev, err := range regs {
				if err != nil {
					return
				}
				for _, r := range ev.Registrations {
					if r.ScopeURL == s.issuer+"app/" && !r.IsDeleted {
						found <- r.RegistrationID
						return
					}
				}
			}
		}()
		var regID serviceworker.RegistrationID
		select {
		case regID = <-found:
		case <-time.After(5 * time.Second):
			t.Fatalf("no service worker registration for %sapp/ reported over CDP", s.issuer)
		}
		push := func(msg map[string]any) {
			t.Helper()
			data, _ := json.Marshal(msg)
			if _, err := chromedp.Call(p.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
				Origin: s.origin, RegistrationID: regID, Data: string(data),
			}); err != nil {
				t.Fatalf("delivering a push: %v", err)
			}
		}
		appURL := s.issuer + "app/#/requests/" + id
		notifications := `navigator.serviceWorker.ready.then((r) => r.getNotifications({ tag: ` + jsString(id) + ` }))`
		push(map[string]any{"id": "m1", "kind": "request", "request_id": id,
			"title": "DemoTradePro Agent asks for your approval", "text": "Push: buy 2 NVDA", "url": appURL})
		p.wait("the notification", notifications+`.then((n) => n.length === 1)`, 5*time.Second)
		got := eval[map[string]any](p, notifications+`.then(([n]) => ({ title: n.title, body: n.body, tag: n.tag,
			requireInteraction: n.requireInteraction, url: n.data && n.data.url }))`)
		want := map[string]any{"title": "DemoTradePro Agent asks for your approval", "body": "Push: buy 2 NVDA", "tag": id,
			"requireInteraction": true, "url": appURL}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("notification %s = %v, want %v", k, got[k], v)
			}
		}
		// A reminder for the same request replaces it, and a payload cannot send the user outside the app.
		push(map[string]any{"id": "m2", "kind": "reminder", "request_id": id, "title": "Reminder: approval needed",
			"text": "Push: buy 2 NVDA", "url": "https://evil.example/phish"})
		p.wait("the reminder to replace it", notifications+`.then((n) => n.length === 1 && n[0].title === 'Reminder: approval needed')`, 5*time.Second)
		if u := eval[string](p, notifications+`.then(([n]) => n.data.url)`); u != appURL {
			t.Errorf("the reminder opens %q, want the app's own URL for the request, %s", u, appURL)
		}

		// A click on the notification opens the request in the app. CDP cannot click an OS
		// notification, so the test dispatches the notificationclick event inside the worker.
		infos, err := chromedp.Targets(p.ctx)
		if err != nil {
			t.Fatal(err)
		}
		clicked := false
		for _, info := range infos {
			if info.Type != "service_worker" || info.URL != s.issuer+"app/sw.js" {
				continue
			}
			clicked = true
			swCtx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
			_, err := chromedp.Run(swCtx, chromedp.Evaluate[chromedp.Void](`self.registration.getNotifications({ tag: `+jsString(id)+` })
				.then(([n]) => { self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n })); })`, chromedp.EvalAwaitPromise))
			cancel()
			if err != nil {
				t.Fatalf("clicking the notification in the worker: %v", err)
			}
			p.wait("the app to open the request", `location.hash === `+jsString("#/requests/"+id)+` && document.querySelector('#approve')`, 5*time.Second)
			p.wait("the clicked notification to close", notifications+`.then((n) => n.length === 0)`, 5*time.Second)
		}
		if !clicked {
			t.Errorf("no service worker target for %sapp/sw.js among %d targets", s.issuer, len(infos))
		}

		// The server tells every device when the request is decided: the prompt goes away.
		push(map[string]any{"id": "m3", "kind": "request", "request_id": id, "title": "Again", "text": "x", "url": appURL})
		p.wait("a notification again", notifications+`.then((n) => n.length === 1)`, 5*time.Second)
		push(map[string]any{"id": "m4", "kind": "closed", "request_id": id})
		p.wait("the closed push to clear it", notifications+`.then((n) => n.length === 0)`, 5*time.Second)

		p.click("#deny")
		p.wait("the denial", `document.querySelector('#result')`, 10*time.Second)
		if status, body := agent.outcome(t, authReq); body["error"] != "access_denied" {
			t.Errorf("token = %d %v, want access_denied", status, body)
		}
	})

	t.Run("PushSubscriptionIsSignedAndStored", func(t *testing.T) {
		p.t = t
		// Headless Chromium has no push service, so PushManager.subscribe cannot succeed here: send
		// a subscription of the right shape through the app's own signed client instead.
		res := eval[string](p, `Promise.all([import('./lib/api.js'), import('./lib/store.js'), import('./lib/b64.js')])
			.then(async ([api, store, b64]) => {
				const d = new api.DeviceAPI(await store.loadDevice(`+jsString(s.issuer)+`));
				const ecdh = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
				const p256dh = b64.b64u(await crypto.subtle.exportKey('raw', ecdh.publicKey));
				const auth = b64.b64u(crypto.getRandomValues(new Uint8Array(16)));
				await d.putPushSubscription({ endpoint: 'https://push.invalid/countersign-test', expirationTime: null, keys: { p256dh, auth } });
				await d.deletePushSubscription();
				return 'ok';
			}).catch((e) => 'error: ' + e.message)`)
		if res != "ok" {
			t.Errorf("PUT then DELETE push-subscription: %s", res)
		}
	})

	t.Run("NumberMatching", func(t *testing.T) {
		p.t = t
		nm := s.agent("agent-nm", "agent-nm-secret")
		resp := nm.authorize(t, "Buy 3 NVDA (matching)", `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":3}]`, nil)
		code, _ := resp["verification_code"].(string)
		if code == "" {
			t.Fatalf("bc-authorize for a number-matching client sent no verification_code: %v", resp)
		}
		p.openRequest("Buy 3 NVDA (matching)")
		p.wait("the three choices", `document.querySelectorAll('#number-matching input[type=radio]').length === 3`, 5*time.Second)
		if !eval[bool](p, `document.querySelector('#approve').disabled`) {
			t.Error("Approve is enabled before a number is picked")
		}
		p.screenshot("request-number-matching")
		choices := eval[[]string](p, `[...document.querySelectorAll('#number-matching input')].map((i) => i.value)`)
		wrong := ""
		for _, c := range choices {
			if c != code {
				wrong = c
			}
		}
		if len(choices) != 3 || wrong == "" || !slices.Contains(choices, code) {
			t.Fatalf("choices %v for code %s", choices, code)
		}
		// A wrong pick is refused by the server, the app says so, and the request stays open.
		p.click(`#number-matching input[value="` + wrong + `"]`)
		p.wait("Approve to be enabled", `!document.querySelector('#approve').disabled`, 2*time.Second)
		p.click("#approve")
		p.wait("the server's refusal", `document.querySelector('#decision-feedback [role=alert]') && !document.querySelector('#approve').disabled`, 10*time.Second)
		if msg := eval[string](p, `document.querySelector('#decision-feedback').textContent`); !strings.Contains(msg, "code") {
			t.Errorf("after a wrong pick the app shows %q", msg)
		}
		p.click(`#number-matching input[value="` + code + `"]`)
		p.click("#approve")
		p.wait("the approval", `document.querySelector('#result') && document.querySelector('#result').textContent.includes('Approved')`, 10*time.Second)
		if status, body := nm.outcome(t, resp["auth_req_id"].(string)); status != http.StatusOK {
			t.Errorf("token = %d %v", status, body)
		}
	})

	t.Run("DenyAndReport", func(t *testing.T) {
		p.t = t
		rep := s.agent("agent-report", "agent-report-secret")
		resp := rep.authorize(t, "Pay 99.00 EUR to Mystery Ltd", `[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"99.00"},"creditorName":"Mystery Ltd"}]`, nil)
		p.openRequest("Pay 99.00 EUR to Mystery Ltd")
		p.click("#deny-report")
		p.wait("the confirmation dialog", `document.querySelector('#confirm').open`, 3*time.Second)
		if focused := eval[string](p, `document.activeElement.id`); focused != "confirm-cancel" {
			t.Errorf("the dialog focuses %q first, want Cancel", focused)
		}
		p.click("#confirm-ok")
		p.wait("the denial", `document.querySelector('#result') && document.querySelector('#result').textContent.includes('Denied and reported')`, 10*time.Second)
		if status, body := rep.outcome(t, resp["auth_req_id"].(string)); body["error"] != "access_denied" {
			t.Errorf("token = %d %v, want access_denied", status, body)
		}
		form := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {"Again"},
			"authorization_details": {`[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"1.00"},"creditorName":"Mystery Ltd"}]`}}
		// The report holds the client's further requests to this user.
		if status, body := rep.post(t, "/bc-authorize", form); status != http.StatusForbidden || body["error"] != "access_denied" {
			t.Errorf("a reported client's next request = %d %v, want 403 access_denied", status, body)
		}
	})

	t.Run("PasskeyStepUp", func(t *testing.T) {
		p.t = t
		res, err := http.Post(s.backend+"/device/v1/passkeys/options", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
			t.Fatalf("POST /device/v1/passkeys/options answers %d", res.StatusCode)
		}
		if _, err := chromedp.Call(p.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(p.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			},
		}); err != nil {
			t.Fatal(err)
		}
		p.goTo("#/devices")
		p.waitDevicesView()
		p.click("#passkey-add")
		p.wait("the new passkey", `document.querySelector('#passkey-list li')`, 10*time.Second)

		uv := s.agent("agent-uv", "agent-uv-secret")
		resp := uv.authorize(t, "Sell 2 NVDA (passkey)", `[{"type":"trade_order","symbol":"NVDA","side":"SELL","quantity":2}]`, nil)
		p.openRequest("Sell 2 NVDA (passkey)")
		if hint := eval[string](p, `document.querySelector('#approve-hint').textContent`); !strings.Contains(hint, "passkey") {
			t.Errorf("the approve hint %q does not say a passkey is needed (does RequestView carry require_user_verification?)", hint)
		}
		p.click("#approve")
		p.wait("the approval", `document.querySelector('#result') && document.querySelector('#result').textContent.includes('Approved')`, 10*time.Second)
		if status, body := uv.outcome(t, resp["auth_req_id"].(string)); status != http.StatusOK {
			t.Errorf("token = %d %v", status, body)
		}
	})

	t.Run("TheShellWorksOffline", func(t *testing.T) {
		p.t = t
		p.goTo("#/requests")
		s.offline.Store(true)
		p.do(chromedp.Reload())
		p.wait("the app from the service worker's cache", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Waiting for you' && !document.querySelector('#banner').hidden`, 10*time.Second)
		if banner := eval[string](p, `document.querySelector('#banner').textContent`); !strings.Contains(banner, "offline") {
			t.Errorf("offline banner = %q", banner)
		}
		s.offline.Store(false)
		p.wait("the banner to go when the server is back", `document.querySelector('#banner').hidden`, 10*time.Second)
	})

	t.Run("RemovingThisBrowserErasesItsKey", func(t *testing.T) {
		p.t = t
		p.goTo("#/devices")
		p.waitDevicesView()
		id := eval[string](p, `document.querySelector('#device-list li .status-current').closest('li').dataset.id`)
		p.click(`button[data-remove="` + id + `"]`)
		p.wait("the confirmation dialog", `document.querySelector('#confirm').open`, 3*time.Second)
		p.click("#confirm-ok")
		p.wait("the not-enrolled view", `document.querySelector('h1').textContent === 'Set up this browser'`, 10*time.Second)
		if eval[bool](p, `import('./lib/store.js').then((m) => m.loadDevice(`+jsString(s.issuer)+`)).then((d) => d !== null)`) {
			t.Error("the device key is still in IndexedDB")
		}
		if out := s.run(t, "users", "list"); strings.Contains(out, "1 device") {
			t.Logf("users list after removal:\n%s", out)
		}
	})

	// Expected noise: failed API calls show up as network errors in the console (409, 401, ...).
	if problems := p.consoleProblems(regexp.MustCompile(`Failed to load resource`)); len(problems) > 0 {
		t.Errorf("the page logged problems:\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// secs parses a countdown "m:ss" (or "h:mm:ss") into seconds.
func secs(t *testing.T, s string) int {
	t.Helper()
	total := 0
	for _, part := range strings.Split(s, ":") {
		n, err := strconv.Atoi(part)
		if err != nil {
			t.Fatalf("countdown %q: %v", s, err)
		}
		total = total*60 + n
	}
	return total
}
