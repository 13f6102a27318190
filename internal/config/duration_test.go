package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDuration_UnmarshalYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want time.Duration
		err  string
	}{
		{"minutes", "5m", 5 * time.Minute, ""},
		{"seconds", "300s", 300 * time.Second, ""},
		{"hours", "72h", 72 * time.Hour, ""},
		{"combined units", "1h30m", 90 * time.Minute, ""},
		{"milliseconds", "1500ms", 1500 * time.Millisecond, ""},
		{"a plain integer is seconds", "300", 300 * time.Second, ""},
		{"a quoted integer is seconds", `"300"`, 300 * time.Second, ""},
		{"zero", "0", 0, ""},
		{"negative seconds", "-5", -5 * time.Second, ""},
		{"negative duration", "-1m", -time.Minute, ""},
		{"no unit on a fraction", "1.5", 0, `"1.5" is not a duration`},
		{"words", "soon", 0, `"soon" is not a duration`},
		{"unknown unit", "3d", 0, `"3d" is not a duration`},
		{"too many seconds", "9223372036854775807", 0, "too long a duration"},
		{"a list", "[5]", 0, "expected a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var d Duration
			err := yaml.Unmarshal([]byte(tc.yaml), &d)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Unmarshal(%s) error = %v, want %q", tc.yaml, err, tc.err)
			case tc.err == "" && err != nil:
				t.Errorf("Unmarshal(%s): %v", tc.yaml, err)
			case tc.err == "" && d.Duration != tc.want:
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.yaml, d.Duration, tc.want)
			}
		})
	}
}

func TestDuration_InConfig(t *testing.T) {
	t.Parallel()
	c := parse(t, "ciba: {default_expiry: 120, max_expiry: 2h, poll_interval: '3s'}\nclients: [{client_id: a, access_token_ttl: 90}]", t.TempDir())
	got := []time.Duration{c.CIBA.DefaultExpiry.Duration, c.CIBA.MaxExpiry.Duration, c.CIBA.PollInterval.Duration, c.Clients[0].AccessTokenTTL.Duration}
	want := []time.Duration{120 * time.Second, 2 * time.Hour, 3 * time.Second, 90 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("duration %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestDuration_Marshal(t *testing.T) {
	t.Parallel()
	d := Duration{90 * time.Second}

	y, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{d})
	if err != nil || string(y) != "d: 1m30s\n" {
		t.Errorf("yaml.Marshal = %q, %v; want %q", y, err, "d: 1m30s\n")
	}

	j, err := json.Marshal(d)
	if err != nil || string(j) != `"1m30s"` {
		t.Errorf("json.Marshal = %s, %v; want %q", j, err, `"1m30s"`)
	}

	tests := []struct {
		json string
		want time.Duration
		ok   bool
	}{
		{`"1m30s"`, 90 * time.Second, true},
		{`90`, 90 * time.Second, true},
		{`"90"`, 90 * time.Second, true},
		{`1.5`, 0, false},
		{`"later"`, 0, false},
		{`true`, 0, false},
	}
	for _, tc := range tests {
		var back Duration
		err := json.Unmarshal([]byte(tc.json), &back)
		if (err == nil) != tc.ok || back.Duration != tc.want {
			t.Errorf("json.Unmarshal(%s) = %v, %v; want %v, ok=%v", tc.json, back.Duration, err, tc.want, tc.ok)
		}
	}

	var round Duration
	if err := yaml.Unmarshal(y[len("d: "):], &round); err != nil || round != d {
		t.Errorf("YAML round trip = %v, %v; want %v", round, err, d)
	}
}
