package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/testserver"
)

const nvdaDetails = `[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`

// requestArgs is a `countersign request` for alice against ts, with extra flags appended.
func requestArgs(ts *testserver.Server, binding string, extra ...string) []string {
	return append([]string{"request", "--issuer", ts.Issuer, "--client-id", testserver.AgentID, "--client-secret", testserver.AgentSecret,
		"--user", testserver.Alice, "--binding-message", binding, "--authorization-details", nvdaDetails}, extra...)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func cliAsync(t *testing.T, args ...string) <-chan cliResult {
	ch := make(chan cliResult, 1)
	go func() {
		code, out, errOut := cli(t, args...)
		ch <- cliResult{code, out, errOut}
	}()
	return ch
}

func TestRequest_ApprovedWithTheTerminalAuthenticator(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	// Alice approves with `countersign device approve`, from her key file.
	key := filepath.Join(t.TempDir(), "alice.key")
	if err := ts.Alice.Save(key); err != nil {
		t.Fatal(err)
	}
	detailsFile := filepath.Join(t.TempDir(), "details.json")
	if err := os.WriteFile(detailsFile, []byte(nvdaDetails), 0o600); err != nil {
		t.Fatal(err)
	}
	args := requestArgs(ts, "Buy 10 NVDA", "--authorization-details", "@"+detailsFile, "--audience", testserver.Audience)
	ch := cliAsync(t, args...)
	if code, out, errOut := cli(t, "device", "approve", "--key", key, "--binding-message", "Buy 10 NVDA", "--wait", "10s"); code != 0 {
		t.Fatalf("device approve: %d %s %s", code, out, errOut)
	}
	r := <-ch
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var tok struct {
		AccessToken          string           `json:"access_token"`
		TokenType            string           `json:"token_type"`
		ExpiresIn            int              `json:"expires_in"`
		IDToken              string           `json:"id_token"`
		AuthorizationDetails []map[string]any `json:"authorization_details"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil {
		t.Fatalf("stdout is not the token response: %v\n%s", err, r.stdout)
	}
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 || tok.IDToken == "" ||
		len(tok.AuthorizationDetails) != 1 || tok.AuthorizationDetails[0]["order_type"] != "market" {
		t.Fatalf("token response %s", r.stdout)
	}
}

func TestRequest_Denied(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	ch := cliAsync(t, requestArgs(ts, "Sell 1000 NVDA")...)
	ts.Deny(t, "Sell 1000 NVDA")
	r := <-ch
	if r.code != 2 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q, want 2 and nothing", r.code, r.stdout)
	}
	oneLineError(t, r.code, r.stderr, "access_denied")
}

func TestRequest_Expired(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{FakeClock: true})
	ch := cliAsync(t, requestArgs(ts, "Buy 10 NVDA")...)
	ts.WaitPending(t, "Buy 10 NVDA")
	ts.Advance(t, 301*time.Second) // past the default 300 s expiry
	r := <-ch
	if r.code != 3 {
		t.Fatalf("exit %d (%s), want 3", r.code, r.stderr)
	}
	oneLineError(t, r.code, r.stderr, "expired_token")
}

func TestRequest_TimeoutExpiresTheRequest(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	// --timeout sets requested_expiry: the server expires the request when the command stops waiting.
	code, out, errOut := cli(t, requestArgs(ts, "Buy 10 NVDA", "--timeout", "1s")...)
	if code != 3 || out != "" {
		t.Fatalf("exit %d, stdout %q (%s), want 3", code, out, errOut)
	}
	if ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("still pending on the device")
	}
}

func TestRequest_OtherErrors(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"UnknownUser", requestArgs(ts, "Buy 10 NVDA", "--user", "nobody@example.com"), "unknown_user_id"},
		{"NoAuthenticator", requestArgs(ts, "Buy 10 NVDA", "--user", testserver.Bob), "invalid_request"},
		{"BadDetails", requestArgs(ts, "Buy 10 NVDA", "--authorization-details", `{"type":"trade_order"}`), "JSON array"},
		{"UnknownType", requestArgs(ts, "Buy 10 NVDA", "--authorization-details", `[{"type":"wire_transfer"}]`), "invalid_authorization_details"},
		{"WrongSecret", requestArgs(ts, "Buy 10 NVDA", "--client-secret", "wrong"), "invalid_client"},
		{"MissingFlags", []string{"request", "--issuer", ts.Issuer}, "--client-id, --user, --client-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, tc.args...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, want 1 and nothing", code, out)
			}
			oneLineError(t, code, errOut, tc.want)
		})
	}
}

// Not parallel: it sets an environment variable.
func TestRequest_SecretFromEnvironment(t *testing.T) {
	ts := testserver.New(t, testserver.Options{})
	t.Setenv("COUNTERSIGN_CLIENT_SECRET", testserver.AgentSecret)
	args := []string{"request", "--issuer", ts.Issuer, "--client-id", testserver.AgentID, "--user", testserver.Alice, "--binding-message", "Buy 1 NVDA"}
	ch := cliAsync(t, args...)
	ts.Approve(t, "Buy 1 NVDA")
	if r := <-ch; r.code != 0 || !strings.Contains(r.stdout, `"access_token"`) {
		t.Fatalf("exit %d %s %s", r.code, r.stdout, r.stderr)
	}
}
