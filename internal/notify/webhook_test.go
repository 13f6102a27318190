package notify

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testWebhookSecret = "whsec-0123456789abcdef"

// webhookDelivery is one POST the receiver got.
type webhookDelivery struct {
	header http.Header
	body   []byte
	err    error // what VerifyWebhookSignature said
}

// webhookReceiver is a team bridge on loopback that verifies every delivery as a real one would,
// at the time the sender's clock says (so the check does not depend on the wall clock).
func newWebhookReceiver(t *testing.T, now time.Time, status int) (*httptest.Server, func() []webhookDelivery) {
	var mu sync.Mutex
	var got []webhookDelivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		d := webhookDelivery{header: r.Header.Clone(), body: body}
		d.err = VerifyWebhookSignature(testWebhookSecret, r.Header.Get(HeaderWebhookSignature), body, now, time.Minute)
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		if d.err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []webhookDelivery {
		mu.Lock()
		defer mu.Unlock()
		return append([]webhookDelivery(nil), got...)
	}
}

func TestWebhook_PostsSignedJSON(t *testing.T) {
	t.Parallel()
	srv, received := newWebhookReceiver(t, testNow.Add(3*time.Second), http.StatusNoContent)
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hooks/countersign", Secret: testWebhookSecret, HTTPClient: srv.Client(), Clock: fixedClock(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	// No address at all: the webhook still applies.
	if err := wh.Send(t.Context(), Recipient{Subject: "alice"}, n); err != nil {
		t.Fatal(err)
	}
	got := received()
	if len(got) != 1 {
		t.Fatalf("receiver got %d deliveries", len(got))
	}
	d := got[0]
	if d.err != nil {
		t.Fatalf("signature: %v", d.err)
	}
	if d.header.Get("Content-Type") != "application/json" || d.header.Get(HeaderWebhookDelivery) != n.ID {
		t.Errorf("Content-Type = %q, %s = %q", d.header.Get("Content-Type"), HeaderWebhookDelivery, d.header.Get(HeaderWebhookDelivery))
	}
	var body map[string]string
	if err := json.Unmarshal(d.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id": n.ID, "kind": n.Kind, "request_id": n.RequestID, "subject": "alice", "title": n.Title,
		"text": n.Text, "url": n.URL, "expires_at": "2026-03-14T15:14:26Z", "sent_at": "2026-03-14T15:09:26Z",
	}
	if len(body) != len(want) {
		t.Errorf("body has fields %v, want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %q, want %q", k, body[k], v)
		}
	}
}

func TestWebhook_NonSuccessAndRedirectFail(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusInternalServerError, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.Path)
				mu.Unlock()
				if status == http.StatusFound {
					http.Redirect(w, r, "/elsewhere", status)
					return
				}
				w.WriteHeader(status)
			}))
			t.Cleanup(srv.Close)
			wh, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hook", Secret: testWebhookSecret})
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Send(t.Context(), Recipient{}, testNotification()); err == nil || errors.Is(err, ErrNotApplicable) {
				t.Fatalf("err = %v, want a failure", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(paths) != 1 || paths[0] != "/hook" {
				t.Errorf("requests to %v, want only /hook", paths)
			}
		})
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"outbox-42-1","kind":"request"}`)
	sent := testNow
	good := signWebhook([]byte(testWebhookSecret), sent.Unix(), body)
	_, otherSig, _ := strings.Cut(signWebhook([]byte("another-secret-0123"), sent.Unix(), body), ",")
	tests := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", testWebhookSecret, good, body, sent.Add(30 * time.Second), nil},
		{"valid with a second (rotated) signature", testWebhookSecret, good + "," + otherSig, body, sent, nil},
		{"valid with spaces and an unknown scheme", testWebhookSecret, strings.ReplaceAll(good, ",", ", ") + ", v2=abc", body, sent, nil},
		{"tampered body", testWebhookSecret, good, []byte(`{"id":"outbox-42-1","kind":"closed"}`), sent, ErrWebhookSignatureMismatch},
		{"wrong secret", "not-the-secret-0123", good, body, sent, ErrWebhookSignatureMismatch},
		{"old timestamp", testWebhookSecret, good, body, sent.Add(2 * time.Minute), ErrWebhookTimestampOld},
		{"future timestamp", testWebhookSecret, good, body, sent.Add(-2 * time.Minute), ErrWebhookTimestampOld},
		{"empty", testWebhookSecret, "", body, sent, ErrWebhookSignatureMalformed},
		{"no signature", testWebhookSecret, "t=1773500966", body, sent, ErrWebhookSignatureMalformed},
		{"not hex", testWebhookSecret, "t=1773500966,v1=zz", body, sent, ErrWebhookSignatureMalformed},
		{"two timestamps", testWebhookSecret, good + ",t=1", body, sent, ErrWebhookSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyWebhookSignature(tt.secret, tt.header, tt.body, tt.now, time.Minute)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyWebhookSignature_TimestampIsSigned(t *testing.T) {
	t.Parallel()
	// Moving the timestamp forward to get past the tolerance check must break the signature.
	body := []byte(`{}`)
	h := signWebhook([]byte(testWebhookSecret), testNow.Unix(), body)
	_, sig, _ := strings.Cut(h, ",")
	later := testNow.Add(time.Hour)
	forged := "t=" + strconv.FormatInt(later.Unix(), 10) + "," + sig
	if err := VerifyWebhookSignature(testWebhookSecret, forged, body, later, time.Minute); !errors.Is(err, ErrWebhookSignatureMismatch) {
		t.Fatalf("err = %v, want a mismatch", err)
	}
}

func TestNewWebhook_RejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]WebhookConfig{
		"short secret":   {URL: "https://hooks.example.com/x", Secret: "short"},
		"http to remote": {URL: "http://hooks.example.com/x", Secret: testWebhookSecret},
		"no URL":         {Secret: testWebhookSecret},
	} {
		if _, err := NewWebhook(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
