package notify

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushClient is a browser's side of a subscription: the keys the user agent generated (RFC 8291
// section 2), which only the test knows, so only the test can read what the server pushed.
type pushClient struct {
	sub    PushSubscription
	priv   *ecdh.PrivateKey
	secret []byte
}

func newPushClient(t *testing.T, endpoint, id string) *pushClient {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	return &pushClient{
		sub: PushSubscription{
			ID:       id,
			Endpoint: endpoint,
			P256DH:   base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
			Auth:     base64.RawURLEncoding.EncodeToString(secret),
		},
		priv:   priv,
		secret: secret,
	}
}

// decryptRFC8291 decrypts an aes128gcm Web Push message body, written from RFC 8291 section 3.4
// and RFC 8188 section 2 rather than from the library, so that it checks the library.
func decryptRFC8291(uaPriv *ecdh.PrivateKey, authSecret, body []byte) ([]byte, error) {
	// RFC 8188 section 2.1 header: salt (16) | rs (4) | idlen (1) | keyid (idlen).
	if len(body) < 21 {
		return nil, errors.New("body shorter than the header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if rs < 18 {
		return nil, fmt.Errorf("record size %d too small", rs)
	}
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("keyid length %d, want 65 (the sender's uncompressed P-256 key)", idlen)
	}
	asPublic := body[21 : 21+idlen]
	ciphertext := body[21+idlen:]
	if uint32(len(ciphertext)) > rs {
		return nil, errors.New("more than one record: a push message must fit in one")
	}

	// RFC 8291 section 3.4.
	asKey, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, err
	}
	ecdhSecret, err := uaPriv.ECDH(asKey)
	if err != nil {
		return nil, err
	}
	prkKey, err := hkdf.Extract(sha256.New, ecdhSecret, authSecret)
	if err != nil {
		return nil, err
	}
	keyInfo := "WebPush: info\x00" + string(uaPriv.PublicKey().Bytes()) + string(asPublic)
	ikm, err := hkdf.Expand(sha256.New, prkKey, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The first (and only) record has sequence number 0, so its nonce is NONCE XOR 0.
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("AEAD open: %w", err)
	}
	// RFC 8188 section 2: data | delimiter | zero padding; 0x02 marks the last record.
	end := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if end < 0 || plain[end] != 0x02 {
		return nil, errors.New("last record lacks the 0x02 delimiter")
	}
	return plain[:end], nil
}

// verifyVAPID checks an RFC 8292 Authorization header: "vapid t=<JWT>, k=<public key>", the JWT
// signed ES256 with the key k, for audience aud, expiring within 24 hours, with a contact.
func verifyVAPID(header, aud string, now time.Time) (claims map[string]any, key []byte, err error) {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return nil, nil, fmt.Errorf("scheme is not vapid: %q", header)
	}
	params := map[string]string{}
	for p := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return nil, nil, fmt.Errorf("bad parameter %q", p)
		}
		params[k] = v
	}
	key, err = base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return nil, nil, fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("k: %w", err)
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("t is not a compact JWS")
	}
	var hdr struct{ Alg, Typ string }
	if err := decodeJWTPart(parts[0], &hdr); err != nil {
		return nil, nil, err
	}
	if hdr.Alg != "ES256" {
		return nil, nil, fmt.Errorf("alg %q, want ES256", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, nil, errors.New("signature is not 64 bytes of r||s")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, nil, errors.New("JWT signature does not verify with k")
	}
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		return nil, nil, err
	}
	if claims["aud"] != aud {
		return nil, nil, fmt.Errorf("aud = %v, want %q", claims["aud"], aud)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return nil, nil, errors.New("no exp")
	}
	if e := time.Unix(int64(exp), 0); !e.After(now) || e.After(now.Add(24*time.Hour)) {
		return nil, nil, fmt.Errorf("exp %v not within 24 h of %v", e, now)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, nil, errors.New("no sub")
	}
	return claims, key, nil
}

func decodeJWTPart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// pushed is one message the fake push service accepted and decrypted.
type pushed struct {
	subID   string
	header  http.Header
	claims  map[string]any
	payload map[string]string
}

// pushService is a push service on loopback (RFC 8030 section 5): it checks VAPID, decrypts with
// the subscription's keys, and answers the status the test set for that subscription.
type pushService struct {
	t       *testing.T
	srv     *httptest.Server
	vapid   string // the expected k, base64url
	mu      sync.Mutex
	clients map[string]*pushClient
	status  map[string]int
	got     []pushed
}

func newPushService(t *testing.T, vapidPublic string) *pushService {
	ps := &pushService{t: t, vapid: vapidPublic, clients: map[string]*pushClient{}, status: map[string]int{}}
	ps.srv = httptest.NewTLSServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	return ps
}

// subscribe creates a subscription whose push service answers status.
func (ps *pushService) subscribe(id string, status int) PushSubscription {
	c := newPushClient(ps.t, ps.srv.URL+"/push/"+id, id)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.clients[id], ps.status[id] = c, status
	return c.sub
}

func (ps *pushService) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	ps.mu.Lock()
	c, status := ps.clients[id], ps.status[id]
	ps.mu.Unlock()
	if r.Method != http.MethodPost || !ok || c == nil {
		http.NotFound(w, r)
		return
	}
	fail := func(format string, args ...any) {
		ps.t.Errorf("push service: "+format, args...)
		http.Error(w, "bad request", http.StatusBadRequest)
	}
	claims, k, err := verifyVAPID(r.Header.Get("Authorization"), ps.srv.URL, time.Now())
	if err != nil {
		fail("VAPID: %v", err)
		return
	}
	if got := base64.RawURLEncoding.EncodeToString(k); got != ps.vapid {
		fail("VAPID k = %s, want the server's key %s", got, ps.vapid)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		fail("Content-Encoding = %q", ce)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail("read: %v", err)
		return
	}
	if len(body) > 4096 {
		fail("body of %d bytes exceeds the 4096 every push service must accept", len(body))
		return
	}
	plain, err := decryptRFC8291(c.priv, c.secret, body)
	if err != nil {
		fail("decrypt: %v", err)
		return
	}
	var payload map[string]string
	if err := json.Unmarshal(plain, &payload); err != nil {
		fail("payload %q: %v", plain, err)
		return
	}
	ps.mu.Lock()
	ps.got = append(ps.got, pushed{subID: id, header: r.Header.Clone(), claims: claims, payload: payload})
	ps.mu.Unlock()
	w.WriteHeader(status)
}

func (ps *pushService) received() []pushed {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]pushed(nil), ps.got...)
}

// goneRecorder collects the subscriptions OnGone was called with.
type goneRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (g *goneRecorder) onGone(_ context.Context, sub PushSubscription) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ids = append(g.ids, sub.ID)
}

func (g *goneRecorder) get() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.ids...)
}

func newTestWebPush(t *testing.T) (*WebPush, *pushService, *goneRecorder) {
	t.Helper()
	pub, priv, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	ps := newPushService(t, pub)
	gone := &goneRecorder{}
	wp, err := NewWebPush(WebPushConfig{
		VAPIDPublicKey:  pub,
		VAPIDPrivateKey: priv,
		Subscriber:      "mailto:ops@example.com",
		TTL:             time.Hour,
		HTTPClient:      ps.srv.Client(),
		OnGone:          gone.onGone,
		Clock:           fixedClock(testNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	return wp, ps, gone
}

func TestRFC8291_WebPushDeliversEncryptedPayload(t *testing.T) {
	t.Parallel()
	wp, ps, gone := newTestWebPush(t)
	sub := ps.subscribe("phone", http.StatusCreated)
	n := testNotification()
	if err := wp.Send(t.Context(), Recipient{Subject: "alice", Push: []PushSubscription{sub}}, n); err != nil {
		t.Fatal(err)
	}
	got := ps.received()
	if len(got) != 1 {
		t.Fatalf("push service got %d messages, want 1", len(got))
	}
	want := map[string]string{
		"id": n.ID, "kind": "request", "request_id": n.RequestID,
		"title": n.Title, "text": n.Text, "url": n.URL,
	}
	if fmt.Sprint(got[0].payload) != fmt.Sprint(want) {
		t.Errorf("decrypted payload = %v\nwant %v", got[0].payload, want)
	}
	if sub := got[0].claims["sub"]; sub != "mailto:ops@example.com" {
		t.Errorf("VAPID sub = %v, want mailto:ops@example.com", sub)
	}
	h := got[0].header
	for k, v := range map[string]string{
		"Urgency": "high",
		"Topic":   n.RequestID,
		"TTL":     "300", // capped at the request's expiry, 5 minutes after the clock
	} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if len(gone.get()) != 0 {
		t.Errorf("OnGone called for %v", gone.get())
	}
}

func TestRFC8030_5_4_ClosedReplacesRequestByTopic(t *testing.T) {
	t.Parallel()
	wp, ps, _ := newTestWebPush(t)
	sub := ps.subscribe("phone", http.StatusCreated)
	n := testNotification()
	n.Kind, n.ID = NotifyClosed, "outbox-43-1"
	if err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{sub}}, n); err != nil {
		t.Fatal(err)
	}
	h := ps.received()[0].header
	if h.Get("Topic") != n.RequestID || h.Get("Urgency") != "normal" {
		t.Errorf("Topic = %q, Urgency = %q; want the request id and normal", h.Get("Topic"), h.Get("Urgency"))
	}
}

func TestWebPush_GoneSubscriptionCallsOnGoneAndFails(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			wp, ps, gone := newTestWebPush(t)
			sub := ps.subscribe("old-laptop", status)
			err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{sub}}, testNotification())
			if err == nil || errors.Is(err, ErrNotApplicable) {
				t.Fatalf("err = %v, want a failure", err)
			}
			if ids := gone.get(); len(ids) != 1 || ids[0] != "old-laptop" {
				t.Errorf("OnGone called for %v, want [old-laptop]", ids)
			}
		})
	}
}

func TestWebPush_OneGoneOneAliveSucceeds(t *testing.T) {
	t.Parallel()
	wp, ps, gone := newTestWebPush(t)
	old := ps.subscribe("old-laptop", http.StatusGone)
	phone := ps.subscribe("phone", http.StatusCreated)
	if err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{old, phone}}, testNotification()); err != nil {
		t.Fatalf("err = %v, want success (the phone accepted)", err)
	}
	if ids := gone.get(); len(ids) != 1 || ids[0] != "old-laptop" {
		t.Errorf("OnGone called for %v, want [old-laptop]", ids)
	}
	if got := ps.received(); len(got) != 2 {
		t.Errorf("push service got %d messages, want 2", len(got))
	}
}

func TestWebPush_ServerErrorFailsWithoutOnGone(t *testing.T) {
	t.Parallel()
	wp, ps, gone := newTestWebPush(t)
	sub := ps.subscribe("phone", http.StatusTooManyRequests)
	err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{sub}}, testNotification())
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("err = %v, want an HTTP 429 failure", err)
	}
	if len(gone.get()) != 0 {
		t.Errorf("OnGone called for %v", gone.get())
	}
}

func TestWebPush_NoSubscriptionIsNotApplicable(t *testing.T) {
	t.Parallel()
	wp, _, _ := newTestWebPush(t)
	if err := wp.Send(t.Context(), Recipient{Subject: "alice", Email: "a@example.com"}, testNotification()); err != ErrNotApplicable {
		t.Fatalf("err = %v, want ErrNotApplicable", err)
	}
}

func TestRFC8030_8_PlainHTTPEndpointRefused(t *testing.T) {
	t.Parallel()
	wp, ps, _ := newTestWebPush(t)
	sub := ps.subscribe("phone", http.StatusCreated)
	sub.Endpoint = strings.Replace(sub.Endpoint, "https://", "http://", 1)
	if err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{sub}}, testNotification()); err == nil {
		t.Fatal("sent to a plain-HTTP push endpoint")
	}
	if n := len(ps.received()); n != 0 {
		t.Fatalf("push service got %d messages", n)
	}
}

func TestWebPush_LongTextIsTruncated(t *testing.T) {
	t.Parallel()
	wp, ps, _ := newTestWebPush(t)
	sub := ps.subscribe("phone", http.StatusCreated)
	n := testNotification()
	n.Text = strings.Repeat("é", 500) + "\nFAKE LINE"
	if err := wp.Send(t.Context(), Recipient{Push: []PushSubscription{sub}}, n); err != nil {
		t.Fatal(err)
	}
	text := ps.received()[0].payload["text"]
	if r := []rune(text); len(r) != maxTextRunes || r[len(r)-1] != '…' || strings.Contains(text, "\n") {
		t.Errorf("text of %d runes = %q", len(r), text)
	}
}

func TestRFC8292_GenerateVAPIDKeys(t *testing.T) {
	t.Parallel()
	pub, priv, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := base64.RawURLEncoding.DecodeString(pub)
	s, _ := base64.RawURLEncoding.DecodeString(priv)
	if len(p) != 65 || p[0] != 4 || len(s) != 32 {
		t.Fatalf("public %d bytes (want 65, uncompressed), private %d bytes (want 32)", len(p), len(s))
	}
}

func TestNewWebPush_RejectsBadConfig(t *testing.T) {
	t.Parallel()
	pub, priv, _ := GenerateVAPIDKeys()
	otherPub, _, _ := GenerateVAPIDKeys()
	tests := []struct {
		name string
		cfg  WebPushConfig
	}{
		{"mismatched keys", WebPushConfig{VAPIDPublicKey: otherPub, VAPIDPrivateKey: priv, Subscriber: "mailto:a@b.c"}},
		{"swapped keys", WebPushConfig{VAPIDPublicKey: priv, VAPIDPrivateKey: pub, Subscriber: "mailto:a@b.c"}},
		{"no subscriber", WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv}},
		{"bare address", WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "a@b.c"}},
		{"http subscriber", WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "http://example.com"}},
	}
	for _, tt := range tests {
		if _, err := NewWebPush(tt.cfg); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := NewWebPush(WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "https://example.com/contact"}); err != nil {
		t.Errorf("https subscriber: %v", err)
	}
}

func TestPushTopic(t *testing.T) {
	t.Parallel()
	if got := pushTopic("req_7QbV2xZt9LmN3pRs4TuW"); got != "req_7QbV2xZt9LmN3pRs4TuW" {
		t.Errorf("short id changed: %q", got)
	}
	long := pushTopic("urn:countersign:request:" + strings.Repeat("x", 40))
	if !topicRE.MatchString(long) || len(long) != 32 {
		t.Errorf("long id topic %q is not 32 base64url characters", long)
	}
}
