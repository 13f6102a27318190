// Package authenticator is a client of the device API: it holds a device key, enrolls it from an
// invitation URL, lists the user's pending requests and signs decisions. The terminal authenticator
// (`countersign device ...`) is built on it, and so are tests and benchmarks that approve requests
// the way a real device does.
package authenticator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
)

// KeyFile is what the terminal authenticator keeps on disk (mode 0600): the device's private key and
// where it is enrolled.
type KeyFile struct {
	Issuer   string          `json:"issuer"`
	DeviceID string          `json:"device_id,omitempty"`
	Subject  string          `json:"sub,omitempty"`
	Key      jose.JSONWebKey `json:"key"`
}

// Device is an enrolled device that talks to the device API.
type Device struct {
	file   KeyFile
	priv   *ecdsa.PrivateKey
	http   *http.Client
	signer jose.Signer
	clock  func() time.Time
}

// Load reads a key file.
func Load(path string, hc *http.Client) (*Device, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f KeyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s is not a countersign key file: %w", path, err)
	}
	priv, ok := f.Key.Key.(*ecdsa.PrivateKey)
	if !ok || f.DeviceID == "" || f.Issuer == "" {
		return nil, fmt.Errorf("%s is not an enrolled countersign key file", path)
	}
	return newDevice(f, priv, hc)
}

func newDevice(f KeyFile, priv *ecdsa.PrivateKey, hc *http.Client) (*Device, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), f.DeviceID))
	if err != nil {
		return nil, err
	}
	return &Device{file: f, priv: priv, http: hc, signer: signer, clock: time.Now}, nil
}

// SetClock replaces the clock the device stamps its signatures with (tests move time).
func (d *Device) SetClock(now func() time.Time) { d.clock = now }

// ID returns the device ID.
func (d *Device) ID() string { return d.file.DeviceID }

// Subject returns the user the device is enrolled for.
func (d *Device) Subject() string { return d.file.Subject }

// Issuer returns the server the device is enrolled with.
func (d *Device) Issuer() string { return d.file.Issuer }

// Save writes the key file with mode 0600, refusing to overwrite an existing file: losing a device
// key by accident would be silent and permanent.
func (d *Device) Save(path string) error {
	raw, err := json.MarshalIndent(d.file, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Enroll generates a P-256 key, redeems the invitation at enrollmentURL with it, and returns the
// enrolled device (not yet saved).
func Enroll(ctx context.Context, hc *http.Client, enrollmentURL, name string) (*Device, error) {
	return EnrollAt(ctx, hc, enrollmentURL, name, time.Now())
}

// EnrollAt is Enroll with the signing time given (tests run the server on a fake clock).
func EnrollAt(ctx context.Context, hc *http.Client, enrollmentURL, name string, now time.Time) (*Device, error) {
	issuer, code, err := authz.ParseEnrollmentURL(enrollmentURL)
	if err != nil {
		return nil, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(authz.TypEnrollment))
	if err != nil {
		return nil, err
	}
	payload, _ := json.Marshal(authz.EnrollmentClaims{Audience: issuer, Code: code, Name: name, Kind: "terminal", IssuedAt: now.Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	f := KeyFile{Issuer: issuer, Key: jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}}
	d, err := newDevice(f, priv, hc)
	if err != nil {
		return nil, err
	}
	var out authz.Enrolled
	if err := d.call(ctx, http.MethodPost, "/enroll", map[string]string{"enrollment": compact}, false, &out); err != nil {
		return nil, err
	}
	if out.Issuer != issuer {
		return nil, fmt.Errorf("server answered for issuer %q, expected %q", out.Issuer, issuer)
	}
	f.DeviceID, f.Subject = out.DeviceID, out.Subject
	return newDevice(f, priv, hc)
}

// APIError is an error answer of the device API.
type APIError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *APIError) Error() string {
	if e.Description != "" {
		return e.Description
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
}

// Pending lists the user's pending requests, oldest first.
func (d *Device) Pending(ctx context.Context) ([]authz.RequestView, error) {
	var out struct {
		Requests []authz.RequestView `json:"requests"`
	}
	err := d.call(ctx, http.MethodGet, "/requests", nil, true, &out)
	return out.Requests, err
}

// History lists the user's recent requests, newest first.
func (d *Device) History(ctx context.Context, limit int) ([]authz.RequestView, error) {
	var out struct {
		Requests []authz.RequestView `json:"requests"`
	}
	err := d.call(ctx, http.MethodGet, fmt.Sprintf("/history?limit=%d", limit), nil, true, &out)
	return out.Requests, err
}

// Get returns one request.
func (d *Device) Get(ctx context.Context, id string) (authz.RequestView, error) {
	var out authz.RequestView
	err := d.call(ctx, http.MethodGet, "/requests/"+id, nil, true, &out)
	return out, err
}

// Remove revokes one of the user's devices (this one included).
func (d *Device) Remove(ctx context.Context, id string) error {
	return d.call(ctx, http.MethodDelete, "/devices/"+id, nil, true, nil)
}

// ErrShownMismatch means the request as displayed (client, message, fields, scope, audience) is not
// the content the decision would sign, or the server's hash of that content differs from ours:
// signing would approve something other than what the user saw.
var ErrShownMismatch = errors.New("the request's displayed content does not match the content to sign; refusing to sign")

// DecisionOptions are the extras some decisions carry.
type DecisionOptions struct {
	// VerificationCode is the number-matching code the user picked (see RequestView.VerificationChoices).
	VerificationCode string
	// Report marks a denial as "not mine".
	Report bool
}

// Decide signs a decision over exactly the content in v (as displayed) and sends it.
func (d *Device) Decide(ctx context.Context, v authz.RequestView, decision domain.Decision) (authz.RequestView, error) {
	return d.DecideWith(ctx, v, decision, DecisionOptions{})
}

// DecideWith is Decide with a number-matching code or a report.
func (d *Device) DecideWith(ctx context.Context, v authz.RequestView, decision domain.Decision, opts DecisionOptions) (authz.RequestView, error) {
	if decision == domain.DecisionApprove && v.RequireUserVerification {
		return authz.RequestView{}, ErrNeedsPasskey
	}
	signed, err := d.SignDecisionWith(v, decision, opts)
	if err != nil {
		return authz.RequestView{}, err
	}
	return d.SendDecision(ctx, v.ID, signed)
}

// ErrNeedsPasskey means the request asks for user verification with a passkey, which this
// authenticator cannot provide.
var ErrNeedsPasskey = errors.New("this request requires user verification with a passkey: approve it in the web authenticator")

// SendDecision posts a signed decision.
func (d *Device) SendDecision(ctx context.Context, requestID, signed string) (authz.RequestView, error) {
	return d.SendDecisionWithAssertion(ctx, requestID, signed, nil)
}

// SendDecisionWithAssertion posts a signed decision with a WebAuthn assertion made over
// SHA-256(signed), for requests that require user verification.
func (d *Device) SendDecisionWithAssertion(ctx context.Context, requestID, signed string, assertion json.RawMessage) (authz.RequestView, error) {
	var out authz.RequestView
	body := map[string]any{"signed_decision": signed}
	if assertion != nil {
		body["webauthn"] = assertion
	}
	err := d.call(ctx, http.MethodPost, "/requests/"+requestID+"/decision", body, false, &out)
	return out, err
}

// SetPushSubscription registers a Web Push subscription for this device.
func (d *Device) SetPushSubscription(ctx context.Context, endpoint, p256dh, auth string) error {
	body := map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}
	return d.call(ctx, http.MethodPut, "/push-subscription", body, true, nil)
}

// PasskeyOptions starts a passkey registration and returns the creation options as JSON.
func (d *Device) PasskeyOptions(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := d.call(ctx, http.MethodPost, "/passkeys/options", map[string]string{}, true, &out)
	return out, err
}

// AddPasskey finishes a passkey registration with the authenticator's credential (JSON).
func (d *Device) AddPasskey(ctx context.Context, credential json.RawMessage) error {
	return d.call(ctx, http.MethodPost, "/passkeys", credential, true, nil)
}

// SignDecision returns the compact JWS of a decision about v, after checking that everything a
// view displays (client, binding message, every field, scope, audience) is the content it signs,
// and that the server hashed that content as we do.
func (d *Device) SignDecision(v authz.RequestView, decision domain.Decision) (string, error) {
	return d.SignDecisionWith(v, decision, DecisionOptions{})
}

// SignDecisionWith is SignDecision with a number-matching code or a report.
func (d *Device) SignDecisionWith(v authz.RequestView, decision domain.Decision, opts DecisionOptions) (string, error) {
	if err := consistent(v); err != nil {
		return "", err
	}
	sum, err := v.Shown.SHA256()
	if err != nil {
		return "", err
	}
	if v.ShownSHA256 != base64.RawURLEncoding.EncodeToString(sum) {
		return "", ErrShownMismatch
	}
	return d.signDecision(v.ID, v.Shown, decision, opts)
}

// SignDecisionOver signs a decision over the given content as is, without the checks of
// SignDecision. It is the primitive for tests and for authenticators that display Shown directly.
func (d *Device) SignDecisionOver(requestID string, shown domain.Shown, decision domain.Decision) (string, error) {
	return d.signDecision(requestID, shown, decision, DecisionOptions{})
}

func (d *Device) signDecision(requestID string, shown domain.Shown, decision domain.Decision, opts DecisionOptions) (string, error) {
	sum, err := shown.SHA256()
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(authz.DecisionClaims{
		Audience: d.file.Issuer, RequestID: requestID, Decision: string(decision),
		ShownSHA256: base64.RawURLEncoding.EncodeToString(sum), IssuedAt: d.clock().Unix(), ID: randomJTI(),
		VerificationCode: opts.VerificationCode, Report: opts.Report,
	})
	return d.sign(authz.TypDecision, payload)
}

// consistent checks that the parts of a view an authenticator displays are exactly its Shown content.
func consistent(v authz.RequestView) error {
	s := v.Shown
	if s.RequestID != v.ID || s.ClientID != v.Client.ID || s.ClientName != v.Client.Name || s.BindingMessage != v.BindingMessage ||
		!slices.Equal(s.Scope, v.Scope) || !slices.Equal(s.Audience, v.Audience) {
		return ErrShownMismatch
	}
	fields, err := authz.DetailFields(s.AuthorizationDetails)
	if err != nil || len(fields) != len(v.Rendered) {
		return ErrShownMismatch
	}
	for i, r := range v.Rendered {
		if !slices.Equal(fields[i], r.Fields) {
			return ErrShownMismatch
		}
	}
	return nil
}

func (d *Device) sign(typ string, payload []byte) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.priv},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), d.file.DeviceID))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func randomJTI() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// call sends a device API request; with auth it signs the Authorization header for method and URL.
func (d *Device) call(ctx context.Context, method, path string, body any, auth bool, out any) error {
	base := strings.TrimSuffix(d.file.Issuer, "/") + "/device/v1"
	target := base + path
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		htu, _, _ := strings.Cut(target, "?")
		payload, _ := json.Marshal(authz.DeviceAuthClaims{Audience: d.file.Issuer, Method: method, URL: htu, IssuedAt: d.clock().Unix(), ID: randomJTI()})
		signed, err := d.sign(authz.TypDeviceAuth, payload)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Device "+signed)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		apiErr := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, apiErr) != nil || apiErr.Code == "" {
			apiErr.Code = "http_error"
			apiErr.Description = fmt.Sprintf("the server answered HTTP %d", resp.StatusCode)
		}
		return apiErr
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}
