package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/countersign/countersign/oauth"
)

// Token is an approval's token response, with the approved authorization_details parsed.
//
// It marshals to JSON as the server's token response plus "expires_at", and unmarshals from that,
// so it can be stored and read back (approval.Store does).
type Token struct {
	oauth.TokenResponse
	// Expiry is when the access token expires, computed from expires_in when it was received.
	Expiry time.Time `json:"expires_at,omitzero"`
	// Details are the authorization_details the user approved, as the server granted them (with
	// schema defaults filled in). Decode one with AuthorizationDetail.Decode or DetailsOf.
	Details []AuthorizationDetail `json:"-"`
}

// newToken builds a Token from a token response received at now.
func newToken(resp oauth.TokenResponse, now time.Time) (*Token, error) {
	t := &Token{TokenResponse: resp}
	if resp.ExpiresIn > 0 {
		t.Expiry = now.Add(time.Duration(resp.ExpiresIn) * time.Second)
	}
	var err error
	if t.Details, err = parseDetails(resp.AuthorizationDetails); err != nil {
		return nil, err
	}
	return t, nil
}

// UnmarshalJSON reads a Token written by json.Marshal (or a plain token response).
func (t *Token) UnmarshalJSON(b []byte) error {
	type plain Token // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	details, err := parseDetails(p.AuthorizationDetails)
	if err != nil {
		return err
	}
	*t = Token(p)
	t.Details = details
	return nil
}

// Valid reports whether the token has an access token that has not expired at now.
func (t *Token) Valid(now time.Time) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Before(t.Expiry))
}

// AuthorizationDetail is one element of an authorization_details array (RFC 9396 section 2): its
// type, and the whole object as received.
type AuthorizationDetail struct {
	Type string
	Raw  json.RawMessage
}

// Decode unmarshals the detail into v (a struct with the fields of its type).
func (d AuthorizationDetail) Decode(v any) error { return json.Unmarshal(d.Raw, v) }

// MarshalJSON writes the detail as received.
func (d AuthorizationDetail) MarshalJSON() ([]byte, error) {
	if len(d.Raw) == 0 {
		return json.Marshal(map[string]string{"type": d.Type})
	}
	return d.Raw, nil
}

// UnmarshalJSON reads one detail object; it must have a string type.
func (d *AuthorizationDetail) UnmarshalJSON(b []byte) error {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("authorization detail: %w", err)
	}
	if head.Type == nil || *head.Type == "" {
		return errors.New("authorization detail without a type")
	}
	d.Type = *head.Type
	d.Raw = append(json.RawMessage(nil), b...)
	return nil
}

func parseDetails(raw json.RawMessage) ([]AuthorizationDetail, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var out []AuthorizationDetail
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("client: authorization_details in the token response: %w", err)
	}
	return out, nil
}

// DetailsOf decodes every approved detail of type typ into a T.
func DetailsOf[T any](t *Token, typ string) ([]T, error) {
	var out []T
	for _, d := range t.Details {
		if d.Type != typ {
			continue
		}
		var v T
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("client: %s detail: %w", typ, err)
		}
		out = append(out, v)
	}
	return out, nil
}
