// Package tradepro is the DemoTradePro reference scenario: a stock-trading API that executes an
// order only with an access token that approved exactly that order, and an agent whose tools are
// getStockPrice, getPortfolio and createOrder, the last gated behind a person's approval.
//
// It uses only Countersign's public packages (client, approval, resource), as a real integration
// would. `countersign demo` runs it end to end against a local server.
package tradepro

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/countersign/countersign/resource"
)

// Order is a trade order, as the API takes it and as a trade_order authorization detail carries it.
type Order struct {
	Symbol    string `json:"symbol"`
	Side      string `json:"side"`
	Quantity  int    `json:"quantity"`
	OrderType string `json:"order_type"`
}

// String says an order as a person reads it: "BUY 10 NVDA at market".
func (o Order) String() string {
	return fmt.Sprintf("%s %d %s at %s", o.Side, o.Quantity, o.Symbol, o.OrderType)
}

// prices are the demo's quotes, in cents.
var prices = map[string]int64{"NVDA": 12340, "AAPL": 22810, "MSFT": 41530, "AMZN": 18620, "GOOG": 16575}

// Position is a holding.
type Position struct {
	Symbol   string `json:"symbol"`
	Quantity int    `json:"quantity"`
}

// Portfolio is the account's cash and positions.
type Portfolio struct {
	CashCents int64      `json:"cash_cents"`
	Positions []Position `json:"positions"`
}

// Confirmation is what the API answers for a placed order.
type Confirmation struct {
	OrderID    int    `json:"order_id"`
	Order      Order  `json:"order"`
	PriceCents int64  `json:"price_cents"`
	ApprovedBy string `json:"approved_by"`
	Receipt    string `json:"receipt"`
}

// API is the DemoTradePro trading API.
type API struct {
	verifier *resource.Verifier
	mu       sync.Mutex
	next     int
	book     Portfolio
}

// NewAPI returns the API, verifying order tokens with v (its audience is the API's own URL).
func NewAPI(v *resource.Verifier) *API {
	return &API{verifier: v, next: 1, book: Portfolio{CashCents: 5_000_000, Positions: []Position{{Symbol: "AAPL", Quantity: 5}}}}
}

// Handler serves GET /stocks/{symbol}/price, GET /portfolio and POST /orders.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stocks/{symbol}/price", func(w http.ResponseWriter, r *http.Request) {
		sym := strings.ToUpper(r.PathValue("symbol"))
		p, ok := prices[sym]
		if !ok {
			http.Error(w, "unknown symbol", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"symbol": sym, "price_cents": p})
	})
	mux.HandleFunc("GET /portfolio", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		writeJSON(w, http.StatusOK, a.book)
	})
	// Placing an order needs a token that approved exactly this order, used once.
	mux.Handle("POST /orders", a.verifier.Middleware(http.HandlerFunc(a.placeOrder)))
	return mux
}

func (a *API) placeOrder(w http.ResponseWriter, r *http.Request) {
	var o Order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
		http.Error(w, "the body must be an order", http.StatusBadRequest)
		return
	}
	if o.OrderType == "" {
		o.OrderType = "market"
	}
	if _, err := resource.Require(r, "trade_order", func(d Order) bool { return d == o }); err != nil {
		resource.WriteError(w, err)
		return
	}
	tok, _ := resource.FromContext(r.Context())
	price, ok := prices[o.Symbol]
	if !ok {
		http.Error(w, "unknown symbol", http.StatusNotFound)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cost := price * int64(o.Quantity)
	if o.Side == "BUY" {
		a.book.CashCents -= cost
		a.add(o.Symbol, o.Quantity)
	} else {
		a.book.CashCents += cost
		a.add(o.Symbol, -o.Quantity)
	}
	c := Confirmation{OrderID: a.next, Order: o, PriceCents: price, ApprovedBy: tok.Subject}
	if tok.Approval != nil {
		c.Receipt = tok.Approval.RequestID
	}
	a.next++
	writeJSON(w, http.StatusCreated, c)
}

func (a *API) add(symbol string, qty int) {
	for i := range a.book.Positions {
		if a.book.Positions[i].Symbol == symbol {
			a.book.Positions[i].Quantity += qty
			return
		}
	}
	a.book.Positions = append(a.book.Positions, Position{Symbol: symbol, Quantity: qty})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Dollars formats cents as "$1,234".
func Dollars(cents int64) string {
	d := cents / 100
	s := fmt.Sprint(d)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return "$" + s
}
