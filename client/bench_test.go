package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/testserver"
)

// BenchmarkApprovalLatency measures what a person waiting on an agent feels: the time from the
// device's signed decision returning (POST .../decision answered) to the token in the agent's
// hand (RequestApproval returned), for each way the agent can wait:
//
//   - poll: plain polling at the interval (1 s), decisions at a random moment within it;
//   - longpoll: Prefer: wait, the poll held by the server until the decision;
//   - ping: CIBA ping mode, the server's notification waking the agent, which then polls.
//
// Everything runs in one process over loopback with SQLite at synchronous=full (production's
// setting). It reports p50 and p99 in milliseconds; a token that arrives before the device has read
// its own answer counts as 0. Run it with:
//
//	go test -run '^$' -bench ApprovalLatency -benchtime 200x ./client  (poll: 20x is plenty)
func BenchmarkApprovalLatency(b *testing.B) {
	for _, mode := range []string{"poll", "longpoll", "ping"} {
		b.Run(mode, func(b *testing.B) { benchmarkLatency(b, mode) })
	}
}

func benchmarkLatency(b *testing.B, mode string) {
	opts := testserver.Options{Synchronous: "full", Authz: func(o *authz.Options) {
		o.PollInterval = time.Second
		o.MaxPendingPerUser, o.MaxRequestsPerMinute = 1<<20, 1<<30
	}}
	cfg := client.Config{}
	switch mode {
	case "poll":
		cfg.DisableLongPoll = true
	case "ping":
		ping := client.NewPingHandler()
		receiver := httptest.NewServer(ping)
		b.Cleanup(receiver.Close)
		opts.PingEndpoint = receiver.URL
		cfg.ClientID, cfg.ClientSecret, cfg.Ping = testserver.PingID, testserver.PingSecret, ping
	}
	ts := testserver.New(b, opts)
	c := newClient(b, ts, cfg)
	ctx := context.Background()

	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		binding := fmt.Sprintf("Buy %d NVDA", i+1)
		ch := requestAsync(ctx, c, tradeRequest(binding))
		v := ts.WaitPending(b, binding)
		switch mode {
		case "longpoll":
			ts.WaitLongPoll(b)
		case "poll":
			// People do not decide in step with the agent's polls.
			time.Sleep(rand.N(time.Second))
		}
		if _, err := ts.Alice.Decide(ctx, v, "approve"); err != nil {
			b.Fatal(err)
		}
		decided := time.Now()
		r := <-ch
		if r.err != nil {
			b.Fatal(r.err)
		}
		latencies = append(latencies, max(0, r.at.Sub(decided)))
	}
	b.StopTimer()
	slices.Sort(latencies)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
	b.ReportMetric(ms(latencies[(len(latencies)*99+99)/100-1]), "p99-ms")
}
