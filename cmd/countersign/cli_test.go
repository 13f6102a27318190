package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const cliConfig = `issuer: http://%[1]s/
listen: %[1]s
data_dir: ./data
ciba: {poll_interval: 1s}
users:
  - {sub: alice, email: alice@example.com, name: Alice Example}
clients:
  - client_id: agent
    client_secret: agent-secret
    name: DemoTradePro Agent
    backchannel_token_delivery_mode: poll
    authorization_details_types: [trade_order]
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
`

// cli runs the command in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// startServer writes a config and runs `countersign serve` until the test ends.
func startServer(t *testing.T) (configPath, base string) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	configPath = filepath.Join(dir, "countersign.yaml")
	if err := os.WriteFile(configPath, []byte(fmt.Sprintf(cliConfig, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "--config", configPath}, nil, io.Discard, io.Discard) }()
	t.Cleanup(func() { cancel(); <-done })
	base = "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return configPath, base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func backchannel(t *testing.T, base, binding string) string {
	t.Helper()
	form := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {binding},
		"authorization_details": {`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`}}
	req, _ := http.NewRequest(http.MethodPost, base+"/bc-authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("agent", "agent-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 {
		t.Fatalf("bc-authorize: %d %v", resp.StatusCode, body)
	}
	return body["auth_req_id"].(string)
}

func tokenStatus(t *testing.T, base, authReqID string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("agent", "agent-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// oneLineError checks the CLI's error contract: a non-zero exit and one line on stderr.
func oneLineError(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("exit 0, want failure (%s)", want)
	}
	if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q, want one line containing %q", stderr, want)
	}
}

func TestTerminalAuthenticator_EndToEnd(t *testing.T) {
	t.Parallel()
	cfg, base := startServer(t)
	dir := filepath.Dir(cfg)
	key := filepath.Join(dir, "alice.key")

	code, out, errOut := cli(t, "users", "invite", "alice", "--config", cfg)
	if code != 0 {
		t.Fatalf("invite: %d %s", code, errOut)
	}
	link := lastLine(out)
	if !strings.HasPrefix(link, base+"/enroll#code=") {
		t.Fatalf("last line %q is not the enrollment URL", link)
	}

	if code, _, errOut := cli(t, "device", "enroll", link, "--key", key); code != 0 {
		t.Fatalf("enroll: %d %s", code, errOut)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	code, _, errOut = cli(t, "device", "enroll", link, "--key", filepath.Join(dir, "again.key"))
	oneLineError(t, code, errOut, "already used")
	code, _, errOut = cli(t, "device", "enroll", link, "--key", key)
	oneLineError(t, code, errOut, "already exists")

	id := backchannel(t, base, "Buy 10 NVDA")
	code, out, _ = cli(t, "device", "list", "--key", key)
	if code != 0 || !strings.Contains(out, "BUY 10 NVDA (market)") || !strings.Contains(out, "Buy 10 NVDA") {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = cli(t, "device", "list", "--key", key, "--json")
	var views []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 {
		t.Fatalf("list --json: %d %s", code, out)
	}

	if code, _, errOut := cli(t, "device", "approve", "--key", key, "--binding-message", "Buy 10 NVDA"); code != 0 {
		t.Fatalf("approve: %d %s", code, errOut)
	}
	if st, body := tokenStatus(t, base, id); st != 200 || body["access_token"] == nil {
		t.Fatalf("token after approve: %d %v", st, body)
	}

	// --wait: the request appears after the command started.
	go func() {
		time.Sleep(300 * time.Millisecond)
		backchannel(t, base, "Sell 5 AAPL")
	}()
	code, out, errOut = cli(t, "device", "deny", "--key", key, "--binding-message", "Sell 5 AAPL", "--wait", "10s")
	if code != 0 || !strings.HasPrefix(out, "denied") {
		t.Fatalf("deny --wait: %d %s %s", code, out, errOut)
	}

	code, _, errOut = cli(t, "device", "approve", "--key", key, "--latest")
	oneLineError(t, code, errOut, "no matching pending request")
	code, _, errOut = cli(t, "device", "approve", "--key", key)
	oneLineError(t, code, errOut, "exactly one of")
	code, _, errOut = cli(t, "device", "list", "--key", filepath.Join(dir, "missing.key"))
	oneLineError(t, code, errOut, "missing.key")

	var approvedID string
	for _, v := range views {
		approvedID, _ = v["id"].(string)
	}
	code, out, errOut = cli(t, "audit", "receipt", approvedID, "--config", cfg)
	if code != 0 || !strings.Contains(out, "verified      yes") || !strings.Contains(out, "Buy 10 NVDA") {
		t.Fatalf("audit receipt: %d %s %s", code, out, errOut)
	}
	code, out, _ = cli(t, "audit", "list", "--config", cfg)
	for _, want := range []string{"request.created", "request.approved", "request.denied", "request.redeemed", "device.enrolled", "user.invited"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit list lacks %s: %s", want, out)
		}
	}
}

func TestUsersAndKeysCommands(t *testing.T) {
	t.Parallel()
	cfg, _ := startServer(t)
	if code, _, errOut := cli(t, "users", "add", "bob", "--email", "bob@example.com", "--name", "Bob", "--config", cfg); code != 0 {
		t.Fatalf("users add: %s", errOut)
	}
	code, out, _ := cli(t, "users", "list", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"sub": "bob"`) || !strings.Contains(out, `"sub": "alice"`) {
		t.Fatalf("users list: %s", out)
	}
	code, _, errOut := cli(t, "users", "invite", "nobody", "--config", cfg)
	oneLineError(t, code, errOut, "no user")

	code, out, _ = cli(t, "keys", "list", "--json", "--config", cfg)
	var before []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &before) != nil {
		t.Fatalf("keys list: %s", out)
	}
	if code, _, errOut := cli(t, "keys", "rotate", "--config", cfg); code != 0 {
		t.Fatalf("rotate: %s", errOut)
	}
	code, out, _ = cli(t, "keys", "list", "--json", "--config", cfg)
	var after []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &after) != nil || len(after) <= len(before) {
		t.Fatalf("keys after rotate: %s", out)
	}
	statuses := map[string]int{}
	for _, k := range after {
		statuses[fmt.Sprint(k["Status"], k["status"])]++
	}
	if len(statuses) < 3 {
		t.Errorf("after a rotation there should be next, active and retired keys: %v", statuses)
	}
}

func TestCLI_ConfigErrors(t *testing.T) {
	t.Parallel()
	code, _, errOut := cli(t, "serve")
	oneLineError(t, code, errOut, "--config is required")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("issuer: ftp://x/\nclients:\n  - client_id: a\n    backchannel_token_delivery_mode: carrier-pigeon\n"), 0o600)
	code, _, errOut = cli(t, "serve", "--config", bad)
	if code == 0 || !strings.Contains(errOut, "issuer") || !strings.Contains(errOut, "clients[0].backchannel_token_delivery_mode") {
		t.Fatalf("bad config: %d %s", code, errOut)
	}
	code, _, errOut = cli(t, "frobnicate")
	oneLineError(t, code, errOut, "unknown command")
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
