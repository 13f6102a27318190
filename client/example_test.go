package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/countersign/countersign/client"
)

// Ask alice to approve a trade and wait for her decision: three lines.
func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Issuer: "https://countersign.example/", ClientID: "agent", ClientSecret: os.Getenv("COUNTERSIGN_CLIENT_SECRET")})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := c.RequestApproval(ctx, client.Request{
		User:                 "alice",
		BindingMessage:       "Buy 10 NVDA",
		AuthorizationDetails: []any{map[string]any{"type": "trade_order", "symbol": "NVDA", "side": "BUY", "quantity": 10}},
		Audience:             []string{"https://api.tradepro.example"},
	})
	switch {
	case errors.Is(err, client.ErrDenied):
		fmt.Println("alice said no")
	case errors.Is(err, client.ErrExpired):
		fmt.Println("alice did not answer in time")
	case err != nil:
		log.Fatal(err) // *oauth.Error for protocol errors, or ctx's error
	default:
		fmt.Println("approved; call the API with", tok.TokenType, "token", tok.AccessToken[:8]+"...")
	}
}

// A chat interface starts the request, tells the user to look at their phone, saves the pending
// request, and finishes later, perhaps in another process.
func ExampleClient_Start() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Issuer: "https://countersign.example/", ClientID: "agent", ClientSecret: os.Getenv("COUNTERSIGN_CLIENT_SECRET")})
	if err != nil {
		log.Fatal(err)
	}
	p, err := c.Start(ctx, client.Request{User: "alice", BindingMessage: "Pay 50 EUR to ACME"})
	if err != nil {
		log.Fatal(err)
	}
	saved, _ := json.Marshal(p) // keep it as you keep credentials

	// Later, anywhere with the same client configuration:
	resumed, err := c.Resume(saved)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := resumed.Poll(ctx)
	if errors.Is(err, client.ErrPending) {
		fmt.Println("still waiting; poll again after", resumed.NextPoll())
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("approved:", len(tok.Details), "details")
}

// A client registered in CIBA ping mode mounts a PingHandler at its notification endpoint.
func ExamplePingHandler() {
	ping := client.NewPingHandler()
	http.Handle("POST /ciba/notify", ping) // the registered backchannel_client_notification_endpoint
	go func() { log.Fatal(http.ListenAndServe(":8443", nil)) }()

	c, err := client.New(context.Background(), client.Config{
		Issuer: "https://countersign.example/", ClientID: "agent-ping", ClientSecret: os.Getenv("COUNTERSIGN_CLIENT_SECRET"),
		Ping: ping,
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.RequestApproval(context.Background(), client.Request{User: "alice", BindingMessage: "Buy 10 NVDA"})
	fmt.Println(err)
}
