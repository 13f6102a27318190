package approval_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/approval"
	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/testserver"
)

// TradeArgs are the arguments of the agent's buy_stock tool.
type TradeArgs struct {
	Symbol   string
	Quantity int
}

type tradeOrder struct {
	Type     string `json:"type"`
	Symbol   string `json:"symbol"`
	Side     string `json:"side"`
	Quantity int    `json:"quantity"`
}

func tradeRequest(_ context.Context, a TradeArgs) (client.Request, error) {
	return client.Request{
		User:                 testserver.Alice,
		BindingMessage:       fmt.Sprintf("Buy %d %s", a.Quantity, a.Symbol),
		AuthorizationDetails: []any{tradeOrder{Type: "trade_order", Symbol: a.Symbol, Side: "BUY", Quantity: a.Quantity}},
	}, nil
}

// broker records the tool's runs and the tokens it got.
type broker struct {
	runs   atomic.Int32
	mu     sync.Mutex
	tokens []string
}

func (b *broker) buy(_ context.Context, tok *client.Token, a TradeArgs) (string, error) {
	b.runs.Add(1)
	b.mu.Lock()
	b.tokens = append(b.tokens, tok.AccessToken)
	b.mu.Unlock()
	orders, err := client.DetailsOf[tradeOrder](tok, "trade_order")
	if err != nil || len(orders) != 1 || orders[0].Symbol != a.Symbol || orders[0].Quantity != a.Quantity {
		return "", fmt.Errorf("the token does not cover %+v: %v %v", a, orders, err)
	}
	return fmt.Sprintf("bought %d %s", a.Quantity, a.Symbol), nil
}

func newAgent(t *testing.T, ts *testserver.Server) *client.Client {
	t.Helper()
	c, err := client.New(context.Background(), client.Config{Issuer: ts.Issuer, ClientID: testserver.AgentID, ClientSecret: testserver.AgentSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type outcome struct {
	out string
	err error
}

func callAsync(ctx context.Context, g *approval.Gate[TradeArgs, string], id string, a TradeArgs) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		out, err := g.Call(ctx, id, a)
		ch <- outcome{out, err}
	}()
	return ch
}

// requests counts the requests Alice was asked to decide.
func requests(t *testing.T, ts *testserver.Server) int {
	t.Helper()
	h, err := ts.Alice.History(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ts.Alice.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(h) + len(p)
}

var nvda = TradeArgs{Symbol: "NVDA", Quantity: 10}

func TestGate_RunsTheToolAfterApprovalAndOnlyAsksOnce(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	b := &broker{}
	gate := approval.NewGate(newAgent(t, ts), tradeRequest, b.buy)
	ctx := context.Background()

	ch := callAsync(ctx, gate, "call-1", nvda)
	ts.Approve(t, "Buy 10 NVDA")
	if o := <-ch; o.err != nil || o.out != "bought 10 NVDA" {
		t.Fatalf("first call: %q %v", o.out, o.err)
	}
	// The agent framework retries the same tool call: no second prompt, the same token.
	out, err := gate.Call(ctx, "call-1", nvda)
	if err != nil || out != "bought 10 NVDA" {
		t.Fatalf("retry: %q %v", out, err)
	}
	if n := requests(t, ts); n != 1 {
		t.Fatalf("alice was asked %d times, want 1", n)
	}
	if b.runs.Load() != 2 || b.tokens[0] != b.tokens[1] {
		t.Fatalf("runs %d, tokens equal %v", b.runs.Load(), b.tokens[0] == b.tokens[1])
	}
	// Another call ID is another approval.
	ch = callAsync(ctx, gate, "call-2", nvda)
	ts.Approve(t, "Buy 10 NVDA")
	if o := <-ch; o.err != nil {
		t.Fatal(o.err)
	}
	if n := requests(t, ts); n != 2 {
		t.Fatalf("alice was asked %d times, want 2", n)
	}
}

func TestGate_ConcurrentRetriesShareOneRequest(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	gate := approval.NewGate(newAgent(t, ts), tradeRequest, (&broker{}).buy)
	ctx := context.Background()
	first := callAsync(ctx, gate, "call-1", nvda)
	second := callAsync(ctx, gate, "call-1", nvda)
	ts.Approve(t, "Buy 10 NVDA")
	for _, ch := range []<-chan outcome{first, second} {
		if o := <-ch; o.err != nil {
			t.Fatal(o.err)
		}
	}
	if n := requests(t, ts); n != 1 {
		t.Fatalf("alice was asked %d times, want 1", n)
	}
}

func TestGate_RetryAfterTimeoutResumesThePendingRequest(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	b := &broker{}
	gate := approval.NewGate(newAgent(t, ts), tradeRequest, b.buy)

	// The framework gives up on the tool call while alice has not decided.
	ctx, cancel := context.WithCancel(context.Background())
	ch := callAsync(ctx, gate, "call-1", nvda)
	ts.WaitPending(t, "Buy 10 NVDA")
	cancel()
	if o := <-ch; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", o.err)
	}
	if !ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("the request was withdrawn; a retry could not resume it")
	}

	// The retry waits for the same request.
	ch = callAsync(context.Background(), gate, "call-1", nvda)
	ts.WaitLongPoll(t)
	ts.Approve(t, "Buy 10 NVDA")
	if o := <-ch; o.err != nil {
		t.Fatal(o.err)
	}
	if n := requests(t, ts); n != 1 || b.runs.Load() != 1 {
		t.Fatalf("asked %d times, ran %d times; want 1 and 1", n, b.runs.Load())
	}
}

func TestGate_DeniedDoesNotRunTheToolOrAskAgain(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	b := &broker{}
	gate := approval.NewGate(newAgent(t, ts), tradeRequest, b.buy)
	ctx := context.Background()
	ch := callAsync(ctx, gate, "call-1", nvda)
	ts.Deny(t, "Buy 10 NVDA")
	if o := <-ch; !errors.Is(o.err, client.ErrDenied) {
		t.Fatalf("got %v, want ErrDenied", o.err)
	}
	if _, err := gate.Call(ctx, "call-1", nvda); !errors.Is(err, client.ErrDenied) {
		t.Fatalf("retry: %v, want ErrDenied", err)
	}
	if n := requests(t, ts); n != 1 || b.runs.Load() != 0 {
		t.Fatalf("asked %d times, ran %d times; want 1 and 0", n, b.runs.Load())
	}
	// Forget lets the agent ask again (say, after the user changed their mind in the chat).
	if err := gate.Forget(ctx, "call-1"); err != nil {
		t.Fatal(err)
	}
	ch = callAsync(ctx, gate, "call-1", nvda)
	ts.Approve(t, "Buy 10 NVDA")
	if o := <-ch; o.err != nil {
		t.Fatal(o.err)
	}
}

func TestGate_InterruptsAndResumesInAnotherProcess(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	store := approval.NewMemoryStore() // shared by both "processes", like a database would be
	b := &broker{}
	ctx := context.Background()

	chat := approval.NewGate(newAgent(t, ts), tradeRequest, b.buy, approval.WithStore(store), approval.WithInterrupts())
	_, err := chat.Call(ctx, "call-1", nvda)
	var intr *approval.Interrupt
	if !errors.As(err, &intr) || !errors.Is(err, client.ErrPending) || intr.User != testserver.Alice || intr.BindingMessage != "Buy 10 NVDA" {
		t.Fatalf("got %v, want an Interrupt", err)
	}
	// Calling again before the interval does not poll (no slow_down) and does not ask again.
	if _, err := chat.Call(ctx, "call-1", nvda); !errors.As(err, &intr) {
		t.Fatalf("second call: %v", err)
	}

	ts.Approve(t, "Buy 10 NVDA")

	// Another process with the same store picks the call up once the interval has passed.
	later := approval.NewGate(newAgent(t, ts), tradeRequest, b.buy, approval.WithStore(store), approval.WithInterrupts())
	time.Sleep(time.Until(intr.NextPoll)) // the server's poll interval (1 s here)
	out, err := later.Call(ctx, "call-1", nvda)
	if err != nil || out != "bought 10 NVDA" {
		t.Fatalf("after approval: %q %v", out, err)
	}
	if n := requests(t, ts); n != 1 || b.runs.Load() != 1 {
		t.Fatalf("asked %d times, ran %d times; want 1 and 1", n, b.runs.Load())
	}
}

func TestGate_CancelWithdrawsThePrompt(t *testing.T) {
	t.Parallel()
	ts := testserver.New(t, testserver.Options{})
	gate := approval.NewGate(newAgent(t, ts), tradeRequest, (&broker{}).buy, approval.WithInterrupts())
	ctx := context.Background()
	if _, err := gate.Call(ctx, "call-1", nvda); !errors.Is(err, client.ErrPending) {
		t.Fatal(err)
	}
	if err := gate.Cancel(ctx, "call-1"); err != nil {
		t.Fatal(err)
	}
	if ts.IsPending(t, "Buy 10 NVDA") {
		t.Fatal("still pending after Cancel")
	}
}

func TestGate_RequiresACallID(t *testing.T) {
	t.Parallel()
	gate := approval.NewGate[TradeArgs, string](nil, tradeRequest, (&broker{}).buy)
	if _, err := gate.Call(context.Background(), "", nvda); err == nil {
		t.Fatal("a call without an ID was accepted")
	}
}
