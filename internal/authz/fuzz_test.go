package authz

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/oauth"
)

func fuzzDetailTypes(t testing.TB) *DetailTypes {
	dt, err := NewDetailTypes([]DetailTypeConfig{{
		Name:    "trade_order",
		Display: "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})",
		Schema: json.RawMessage(`{"type":"object","required":["symbol","side","quantity"],"properties":{
			"symbol":{"type":"string","pattern":"^[A-Z.]{1,10}$"},"side":{"enum":["BUY","SELL"]},
			"quantity":{"type":"integer","minimum":1},"order_type":{"enum":["market","limit"],"default":"market"},
			"limit_price":{"type":"number"},"meta":{"type":"object","properties":{"tag":{"type":"string","default":"none"}}}}}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// FuzzAuthorizationDetails checks that any input is either rejected with
// invalid_authorization_details or accepted as an array of objects of an allowed type that still
// validates after normalization, and that rendering what was accepted never fails.
func FuzzAuthorizationDetails(f *testing.F) {
	dt := fuzzDetailTypes(f)
	client := domain.Client{ID: "agent", AuthorizationDetailsTypes: []string{"trade_order"}}
	for _, seed := range []string{
		`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10}]`,
		`[{"type":"trade_order","symbol":"NVDA","side":"BUY","quantity":10,"meta":{}}]`,
		`[{"type":"trade_order","symbol":"A","side":"SELL","quantity":1e2,"actions":["x"]}]`,
		`[{"type":"other"}]`, `{}`, `[]`, `[1]`, `[{"type":1}]`, `[{"type":"trade_order"}] x`, "\x00", `[{"type":"trade_order","symbol":"\u202e"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := dt.Parse([]byte(in), client)
		if err != nil {
			oe, ok := err.(*oauth.Error)
			if !ok || oe.Code != oauth.ErrInvalidAuthorizationDetails || oe.Description == "" {
				t.Fatalf("error %v is not a described invalid_authorization_details", err)
			}
			return
		}
		if out == nil {
			return
		}
		var els []map[string]any
		if err := json.Unmarshal(out, &els); err != nil || len(els) == 0 {
			t.Fatalf("accepted %q but normalized to %q", in, out)
		}
		for _, el := range els {
			if el["type"] != "trade_order" {
				t.Fatalf("accepted a detail of type %v", el["type"])
			}
		}
		// Normalizing is idempotent: what the token carries validates again unchanged.
		again, err := dt.Parse(out, client)
		if err != nil || string(again) != string(out) {
			t.Fatalf("normalized details do not round-trip: %v %q %q", err, out, again)
		}
		for _, r := range dt.Render(out) {
			if strings.ContainsAny(r.Text, "\n\r\u202e") {
				t.Fatalf("rendered text has control or bidi characters: %q", r.Text)
			}
		}
	})
}

// FuzzLoginHint checks that the login_hint parser never panics and only fails with invalid_request.
func FuzzLoginHint(f *testing.F) {
	for _, seed := range []string{"alice", "alice@example.com", `{"format":"iss_sub","iss":"https://x/","sub":"alice"}`,
		`{"format":"email"}`, `{`, "", " ", `{"format":"iss_sub","iss":"","sub":""}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseLoginHint(in)
		if err != nil {
			if oe, ok := err.(*oauth.Error); !ok || oe.Code != oauth.ErrInvalidRequest {
				t.Fatalf("error %v is not invalid_request", err)
			}
			return
		}
		if h.Subject == "" && h.Email == "" {
			t.Fatalf("accepted %q without naming anyone", in)
		}
		if h.Issuer != "" && h.Subject == "" {
			t.Fatalf("iss_sub without sub accepted: %q", in)
		}
	})
}
