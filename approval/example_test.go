package approval_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/countersign/countersign/approval"
	"github.com/countersign/countersign/client"
)

// Gate the agent's buy_stock tool behind alice's approval: the tool runs only once she approved
// exactly this order, and a retried tool call does not ask her twice.
func Example() {
	agent, err := client.New(context.Background(), client.Config{Issuer: "https://countersign.example/", ClientID: "agent", ClientSecret: os.Getenv("COUNTERSIGN_CLIENT_SECRET")})
	if err != nil {
		log.Fatal(err)
	}

	type BuyArgs struct {
		Symbol   string
		Quantity int
	}
	ask := func(_ context.Context, a BuyArgs) (client.Request, error) {
		return client.Request{
			User:                 "alice",
			BindingMessage:       fmt.Sprintf("Buy %d %s", a.Quantity, a.Symbol),
			AuthorizationDetails: []any{map[string]any{"type": "trade_order", "symbol": a.Symbol, "side": "BUY", "quantity": a.Quantity}},
			Audience:             []string{"https://api.tradepro.example"},
		}, nil
	}
	buy := func(ctx context.Context, tok *client.Token, a BuyArgs) (string, error) {
		// Call the trading API with tok.AccessToken; it checks the order matches what was approved.
		return fmt.Sprintf("bought %d %s", a.Quantity, a.Symbol), nil
	}

	gate := approval.NewGate(agent, ask, buy)
	out, err := gate.Call(context.Background(), "tool-call-42", BuyArgs{Symbol: "NVDA", Quantity: 10})
	if errors.Is(err, client.ErrDenied) {
		fmt.Println("alice declined; tell the user")
		return
	}
	fmt.Println(out, err)
}
