package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/notify"
)

const crashConfig = `issuer: http://%[1]s/
listen: %[1]s
data_dir: ./data
users:
  - {sub: alice, email: alice@example.com, channels: [webhook]}
clients:
  - client_id: agent
    client_secret: agent-secret
    authorization_details_types: [trade_order]
authorization_details_types:
  trade_order:
    schema: {type: object}
notifications:
  webhook: {url: "%[2]s", secret: "%[3]s"}
`

// TestOutbox_SurvivesAKill kills the server (SIGKILL) while notifications are pending, restarts it,
// and checks that every notification is delivered exactly once, with no delivery attempt repeated.
func TestOutbox_SurvivesAKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "countersign")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const secret = "crash-test-secret-0123456789"
	var mu sync.Mutex
	up := false
	attempts := map[string]int{}  // delivery ID -> times seen
	delivered := map[string]int{} // request ID -> successful deliveries
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhookSignature(secret, r.Header.Get(notify.HeaderWebhookSignature), body, time.Now(), time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[r.Header.Get(notify.HeaderWebhookDelivery)]++
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var n struct {
			RequestID string `json:"request_id"`
		}
		_ = jsonUnmarshal(body, &n)
		delivered[n.RequestID]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	addr := freeAddr(t)
	cfg := filepath.Join(dir, "countersign.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(crashConfig, addr, hook.URL, secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--config", cfg)
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, base)
		return cmd
	}
	server := start()
	t.Cleanup(func() { _ = server.Process.Kill(); _, _ = server.Process.Wait() })

	code, out, errOut := cli(t, "users", "invite", "alice", "--config", cfg)
	if code != 0 {
		t.Fatalf("invite: %s", errOut)
	}
	if code, _, errOut := cli(t, "device", "enroll", lastLine(out), "--key", filepath.Join(dir, "alice.key")); code != 0 {
		t.Fatalf("enroll: %s", errOut)
	}
	const n = 8
	for i := range n {
		backchannel(t, base, fmt.Sprintf("order %d", i))
	}
	// Every notification is attempted (and fails) at least once before the kill.
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= n
	})
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = server.Process.Wait()

	mu.Lock()
	up = true
	mu.Unlock()
	server = start()
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for id, c := range delivered {
		if c != 1 {
			t.Errorf("request %s notified %d times", id, c)
		}
	}
	for id, c := range attempts {
		if c != 1 {
			t.Errorf("delivery attempt %s was sent %d times", id, c)
		}
	}
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// eventually polls cond for up to 30 s (real processes and real backoff are involved).
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met within 30s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
