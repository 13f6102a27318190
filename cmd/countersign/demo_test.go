package main

import (
	"strings"
	"testing"
)

func TestDemo_RunsEndToEnd(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, "demo", "--auto")
	if code != 0 {
		t.Fatalf("demo: %d %s\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"getStockPrice(NVDA) = $123.40",
		"message: Buy 10 NVDA at market, about $1,234",
		"order #1 placed: BUY 10 NVDA at market",
		"signature verified: true",
		`the same token again: HTTP 401: Bearer error="invalid_token"`,
		"alice declined: the order was not placed",
		"{NVDA 10}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "order #2") {
		t.Error("the denied order was placed")
	}
}

func TestDemo_NeedsATerminalOrAuto(t *testing.T) {
	t.Parallel()
	code, _, errOut := cli(t, "demo")
	oneLineError(t, code, errOut, "--auto")
}
