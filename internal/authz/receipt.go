package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/domain"
)

// ReceiptView is a decision's proof, checked again from what is stored: the content that was shown,
// its hash, the device's signature over it and the device's public key. An auditor can redo every
// check with these values alone.
type ReceiptView struct {
	RequestID   string          `json:"request_id"`
	Status      string          `json:"status"`
	Decision    string          `json:"decision"`
	DecidedAt   time.Time       `json:"decided_at"`
	RedeemedAt  *time.Time      `json:"redeemed_at,omitempty"`
	Device      DeviceView      `json:"device"`
	DeviceKey   json.RawMessage `json:"device_public_key"`
	Shown       domain.Shown    `json:"shown"`
	ShownSHA256 string          `json:"shown_sha256"`
	Signature   string          `json:"signature"`
	// Verified is true when the signature verifies with the device key and its payload names this
	// request, this decision and the hash of Shown.
	Verified bool `json:"verified"`
	// Problem says why Verified is false.
	Problem string `json:"problem,omitempty"`
}

// Receipt returns the decision receipt of a request and checks it again.
func (s *Service) Receipt(ctx context.Context, requestID string) (ReceiptView, error) {
	r, err := s.store.GetRequest(ctx, requestID)
	if errors.Is(err, domain.ErrNotFound) {
		return ReceiptView{}, fmt.Errorf("no request %q", requestID)
	}
	if err != nil {
		return ReceiptView{}, err
	}
	if r.Receipt == nil {
		return ReceiptView{}, fmt.Errorf("request %s is %s: nobody decided it, so there is no receipt", r.ID, r.Status)
	}
	dev, err := s.store.GetDevice(ctx, r.Receipt.DeviceID)
	if err != nil {
		return ReceiptView{}, fmt.Errorf("device %s of the receipt: %w", r.Receipt.DeviceID, err)
	}
	shown := r.Shown()
	sum, err := shown.SHA256()
	if err != nil {
		return ReceiptView{}, err
	}
	v := ReceiptView{
		RequestID: r.ID, Status: string(r.Status), Decision: string(r.Receipt.Decision), DecidedAt: r.Receipt.DecidedAt,
		Device:    DeviceView{ID: dev.ID, Name: dev.Name, Kind: dev.Kind, CreatedAt: dev.CreatedAt},
		DeviceKey: dev.PublicKey, Shown: shown, ShownSHA256: base64.RawURLEncoding.EncodeToString(sum),
		Signature: r.Receipt.Signature,
	}
	if !r.RedeemedAt.IsZero() {
		t := r.RedeemedAt
		v.RedeemedAt = &t
	}
	v.Problem = verifyReceipt(r, dev, v.ShownSHA256)
	v.Verified = v.Problem == ""
	return v, nil
}

func verifyReceipt(r domain.Request, dev domain.Device, shownHash string) string {
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(dev.PublicKey); err != nil {
		return "the device key does not parse: " + err.Error()
	}
	jws, err := jose.ParseSigned(r.Receipt.Signature, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "the signature does not parse: " + err.Error()
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return "the signature does not verify with the device key"
	}
	var c DecisionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "the signed payload does not parse"
	}
	switch {
	case c.RequestID != r.ID:
		return "the signature is for request " + c.RequestID
	case c.Decision != string(r.Receipt.Decision):
		return "the signature says " + c.Decision
	case c.ShownSHA256 != shownHash:
		return "the signed hash differs from the hash of the stored content"
	}
	return ""
}
