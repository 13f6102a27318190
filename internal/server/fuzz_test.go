package server

import (
	"net/url"
	"testing"

	"github.com/countersign/countersign/oauth"
)

// FuzzParseFormBody checks the form parser: it never panics, fails only with invalid_request, and
// never accepts a repeated parameter other than resource and audience.
func FuzzParseFormBody(f *testing.F) {
	for _, seed := range []string{
		"grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id=abc",
		"scope=openid&scope=openid", "resource=a&resource=b", "a=%zz", "=&&=", "a;b=c", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := parseFormBody(body)
		if err != nil {
			if oe, ok := err.(*oauth.Error); !ok || oe.Code != oauth.ErrInvalidRequest {
				t.Fatalf("error %v is not invalid_request", err)
			}
			return
		}
		want, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("accepted a body the standard parser rejects: %q", body)
		}
		for k, v := range form {
			if len(v) > 1 && !repeatable[k] {
				t.Fatalf("accepted repeated %q", k)
			}
			if len(want[k]) != len(v) {
				t.Fatalf("parameter %q changed", k)
			}
		}
	})
}
