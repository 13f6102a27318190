package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// Outbox kinds of CIBA callbacks.
const (
	KindCIBAPing = "ciba_ping"
	KindCIBAPush = "ciba_push"
)

// CallbackPayload is the outbox payload of a CIBA ping or push: the JSON body to POST and the
// client_notification_token to send as its bearer token.
type CallbackPayload struct {
	Bearer string          `json:"bearer"`
	Body   json.RawMessage `json:"body"`
}

// CIBACallback delivers CIBA ping and push notifications (CIBA sections 10.2 and 10.3) to a client's
// backchannel_client_notification_endpoint.
type CIBACallback struct {
	HTTP *http.Client
}

// NewCIBACallback returns a sender with an HTTP client that does not follow redirects: the endpoint
// is registered, and a redirect must not send the bearer token and tokens elsewhere.
func NewCIBACallback(transport http.RoundTripper) *CIBACallback {
	return &CIBACallback{HTTP: &http.Client{
		Transport: transport,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Send posts the callback; any 2xx answer is success (CIBA says 204, real clients also say 200).
func (c *CIBACallback) Send(ctx context.Context, m domain.OutboxMessage) error {
	var p CallbackPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return &PermanentError{Err: fmt.Errorf("callback payload: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Target, bytes.NewReader(p.Body))
	if err != nil {
		return &PermanentError{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.Bearer)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("notification endpoint answered HTTP %d", resp.StatusCode)
	}
	return nil
}
