package notify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fixedClock is a domain.Clock that always says the same time.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func testNotification() Notification {
	return Notification{
		ID:        "outbox-42-1",
		Kind:      NotifyRequest,
		RequestID: "req_7QbV2xZt9LmN3pRs4TuW",
		Subject:   "alice",
		Title:     "DemoTradePro Agent asks for your approval",
		Text:      "Buy 10 NVDA at market",
		URL:       "https://auth.example.com/app/requests/req_7QbV2xZt9LmN3pRs4TuW",
		ExpiresAt: testNow.Add(5 * time.Minute),
	}
}

// fakeChannel answers with err and records that it was called.
type fakeChannel struct {
	name   string
	err    error
	called bool
}

func (f *fakeChannel) Name() string { return f.name }
func (f *fakeChannel) Send(context.Context, Recipient, Notification) error {
	f.called = true
	return f.err
}

func TestSendFirst(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name       string
		errs       []error // one channel per entry, named c0, c1, ...
		wantUsed   string
		wantCalled []bool
		wantErr    func(error) bool
	}{
		{"first success wins", []error{nil, nil}, "c0", []bool{true, false}, nil},
		{"failure falls back to the next", []error{boom, nil}, "c1", []bool{true, true}, nil},
		{"not applicable is skipped", []error{ErrNotApplicable, nil, nil}, "c1", []bool{true, true, false}, nil},
		{"wrapped not applicable is skipped", []error{errors.Join(ErrNotApplicable), nil}, "c1", []bool{true, true}, nil},
		{"all fail joins the failures", []error{boom, ErrNotApplicable, errors.New("bang")}, "", []bool{true, true, true}, func(err error) bool {
			return errors.Is(err, boom) && !errors.Is(err, ErrNotApplicable) &&
				strings.Contains(err.Error(), "c0: boom") && strings.Contains(err.Error(), "c2: bang")
		}},
		{"none applicable", []error{ErrNotApplicable, ErrNotApplicable}, "", []bool{true, true}, func(err error) bool {
			return err == ErrNotApplicable
		}},
		{"no channels", nil, "", nil, func(err error) bool { return err == ErrNotApplicable }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var chans []Channel
			var fakes []*fakeChannel
			for i, err := range tt.errs {
				f := &fakeChannel{name: "c" + string(rune('0'+i)), err: err}
				fakes = append(fakes, f)
				chans = append(chans, f)
			}
			used, err := SendFirst(t.Context(), chans, Recipient{Subject: "alice"}, testNotification())
			if used != tt.wantUsed {
				t.Errorf("used = %q, want %q", used, tt.wantUsed)
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if tt.wantErr != nil && !tt.wantErr(err) {
				t.Errorf("unexpected err %v", err)
			}
			for i, f := range fakes {
				if f.called != tt.wantCalled[i] {
					t.Errorf("%s called = %v, want %v", f.name, f.called, tt.wantCalled[i])
				}
			}
		})
	}
}

func TestSendFirst_StopsWhenContextDone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f := &fakeChannel{name: "c0"}
	_, err := SendFirst(ctx, []Channel{f}, Recipient{}, testNotification())
	if !errors.Is(err, context.Canceled) || f.called {
		t.Fatalf("err = %v, called = %v; want context.Canceled without calling", err, f.called)
	}
}

func TestTruncateRunes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer sentence here", 10, "a longer…"},
		{"ééééééééééé", 5, "éééé…"},
		{"😀😀😀😀", 3, "😀😀…"},
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		got := truncateRunes(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tt.n, 0) {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.3.2.1": true, "::1": true, "[::1]": true,
		"mail.example.com": false, "10.0.0.1": false, "localhost.evil.com": false, "": false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
