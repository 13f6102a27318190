package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// SMSConfig configures the SMS channel for a Twilio-compatible provider (Twilio itself, or any
// service or gateway that accepts the same form POST).
type SMSConfig struct {
	// BaseURL is the API root (default https://api.twilio.com). It must be https, or http to a
	// loopback host.
	BaseURL string
	// AccountSID and AuthToken are the HTTP Basic credentials; AccountSID also names the account
	// in the path. The token never appears in errors.
	AccountSID, AuthToken string
	// From is the sender number (E.164) or messaging service / alphanumeric sender the provider
	// accepts.
	From string
	// HTTPClient sends the request (default: a 15 s timeout). Redirects are never followed, so the
	// credentials go nowhere but BaseURL.
	HTTPClient *http.Client
}

// SMS sends a short text with the link to the request, for people without the app.
type SMS struct {
	cfg      SMSConfig
	endpoint string
	http     *http.Client
}

// maxSMSRunes keeps a message within two or three segments: long enough for a title, the action
// and a link, short enough not to be split into a wall of texts.
const maxSMSRunes = 320

// NewSMS checks the configuration and returns the channel.
func NewSMS(cfg SMSConfig) (*SMS, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.twilio.com"
	}
	if cfg.AccountSID == "" || cfg.AuthToken == "" || cfg.From == "" {
		return nil, errors.New("sms: account SID, auth token and from are required")
	}
	if strings.ContainsAny(cfg.AccountSID, "/?#%") {
		return nil, errors.New("sms: account SID has characters that do not belong in a path")
	}
	base, err := checkHTTPURL("sms: base URL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(base.String(), "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json"
	return &SMS{cfg: cfg, endpoint: endpoint, http: noRedirectClient(cfg.HTTPClient)}, nil
}

// Name returns "sms".
func (*SMS) Name() string { return "sms" }

// Send texts n to the recipient's phone; without one it returns ErrNotApplicable. Any 2xx answer
// means the provider accepted it; otherwise the error carries the provider's own message.
func (s *SMS) Send(ctx context.Context, to Recipient, n Notification) error {
	if to.Phone == "" {
		return ErrNotApplicable
	}
	body, err := smsBody(n)
	if err != nil {
		return err
	}
	form := url.Values{"To": {to.Phone}, "From": {s.cfg.From}, "Body": {body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	return fmt.Errorf("sms provider answered HTTP %d%s", resp.StatusCode, providerMessage(raw))
}

// providerMessage extracts Twilio's error ({"code": 21211, "message": "..."}) so an operator sees
// why, e.g. "invalid 'To' phone number"; a body in another shape is not echoed, as it may be an
// HTML page from a proxy.
func providerMessage(raw []byte) string {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		return ""
	}
	msg := truncateRunes(singleLine(e.Message), 200)
	if e.Code != 0 {
		return fmt.Sprintf(": %s (code %d)", msg, e.Code)
	}
	return ": " + msg
}

// smsBody is the title, the text and the link on three lines, at most maxSMSRunes. The link is
// what the message is for, so the text is shortened first, then the title, never the link.
func smsBody(n Notification) (string, error) {
	title := singleLine(n.Title)
	text := truncateRunes(singleLine(n.Text), maxTextRunes)
	link := n.URL
	budget := maxSMSRunes - utf8.RuneCountInString(link) - 2 // two line breaks
	if budget < 20 {
		return "", fmt.Errorf("sms: link of %d characters leaves no room for the message", utf8.RuneCountInString(link))
	}
	tl, xl := utf8.RuneCountInString(title), utf8.RuneCountInString(text)
	if tl+1+xl > budget {
		// Keep at least half the room for the title (who is asking matters most), the rest for
		// the text.
		title = truncateRunes(title, max(budget/2, budget-1-xl))
		text = truncateRunes(text, budget-1-utf8.RuneCountInString(title))
	}
	lines := []string{title}
	if text != "" {
		lines = append(lines, text)
	}
	return strings.Join(append(lines, link), "\n"), nil
}
