package tradepro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/countersign/countersign/approval"
	"github.com/countersign/countersign/client"
)

// Agent is the DemoTradePro agent: it reads prices and the portfolio on its own, and places orders
// only after its user approved each one on their authenticator.
type Agent struct {
	api    string
	user   string
	http   *http.Client
	orders *approval.Gate[Order, Confirmation]

	mu        sync.Mutex
	lastToken string
}

// NewAgent returns an agent acting for user through c, calling the trading API at apiURL (which is
// also the audience of its order tokens).
func NewAgent(c *client.Client, apiURL, user string, opts ...approval.Option) *Agent {
	a := &Agent{api: strings.TrimSuffix(apiURL, "/"), user: user, http: &http.Client{}}
	a.orders = approval.NewGate(c, a.approvalRequest, a.placeOrder, opts...)
	return a
}

// GetStockPrice is the getStockPrice tool: a quote in cents.
func (a *Agent) GetStockPrice(ctx context.Context, symbol string) (int64, error) {
	var q struct {
		PriceCents int64 `json:"price_cents"`
	}
	err := a.get(ctx, "/stocks/"+symbol+"/price", &q)
	return q.PriceCents, err
}

// GetPortfolio is the getPortfolio tool.
func (a *Agent) GetPortfolio(ctx context.Context) (Portfolio, error) {
	var p Portfolio
	err := a.get(ctx, "/portfolio", &p)
	return p, err
}

// CreateOrder is the createOrder tool. It asks the user first ("Buy 10 NVDA at market, about
// $1,234"), then places exactly the approved order. callID makes a retried tool call reuse the same
// approval instead of asking twice.
func (a *Agent) CreateOrder(ctx context.Context, callID string, o Order) (Confirmation, error) {
	if o.OrderType == "" {
		o.OrderType = "market"
	}
	return a.orders.Call(ctx, callID, o)
}

// approvalRequest says what the user is asked: the order and its approximate cost.
func (a *Agent) approvalRequest(ctx context.Context, o Order) (client.Request, error) {
	price, err := a.GetStockPrice(ctx, o.Symbol)
	if err != nil {
		return client.Request{}, err
	}
	verb := map[string]string{"BUY": "Buy", "SELL": "Sell"}[o.Side]
	return client.Request{
		User:           a.user,
		BindingMessage: fmt.Sprintf("%s %d %s at %s, about %s", verb, o.Quantity, o.Symbol, o.OrderType, Dollars(price*int64(o.Quantity))),
		AuthorizationDetails: []any{map[string]any{
			"type": "trade_order", "symbol": o.Symbol, "side": o.Side, "quantity": o.Quantity, "order_type": o.OrderType,
		}},
		Audience: []string{a.api},
	}, nil
}

// placeOrder runs once the order is approved, with the token that approved it.
func (a *Agent) placeOrder(ctx context.Context, tok *client.Token, o Order) (Confirmation, error) {
	a.mu.Lock()
	a.lastToken = tok.AccessToken
	a.mu.Unlock()
	var c Confirmation
	err := a.PostOrder(ctx, tok.AccessToken, o, &c)
	return c, err
}

// LastOrderToken is the access token of the last order placed, kept so the demo can show that the
// API refuses to use it twice.
func (a *Agent) LastOrderToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastToken
}

// PostOrder calls POST /orders with a bearer token. It is exported so the demo can show what the API
// does with a replayed or mismatched token.
func (a *Agent) PostOrder(ctx context.Context, accessToken string, o Order, out *Confirmation) error {
	body, _ := json.Marshal(o)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.api+"/orders", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	return a.do(req, out)
}

func (a *Agent) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api+path, nil)
	if err != nil {
		return err
	}
	return a.do(req, out)
}

// APIError is a non-2xx answer of the trading API.
type APIError struct {
	Status          int
	WWWAuthenticate string
	Body            string
}

func (e *APIError) Error() string {
	if e.WWWAuthenticate != "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.WWWAuthenticate)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

func (a *Agent) do(req *http.Request, out any) error {
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return &APIError{Status: resp.StatusCode, WWWAuthenticate: resp.Header.Get("WWW-Authenticate"), Body: string(body)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return errors.New("the API answered something that is not JSON")
	}
	return nil
}
