package resource_test

import (
	"encoding/json"
	"log"
	"net/http"

	"github.com/countersign/countersign/resource"
)

// Protect an API: only a token that approved exactly this order places it, and only once.
func Example() {
	v, err := resource.New(resource.Config{Issuer: "https://countersign.example/", Audience: "https://api.tradepro.example"})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /orders", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body TradeOrder
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad order", http.StatusBadRequest)
			return
		}
		if _, err := resource.Require(r, "trade_order", func(d TradeOrder) bool { return d == body }); err != nil {
			resource.WriteError(w, err) // 403 insufficient_scope
			return
		}
		tok, _ := resource.FromContext(r.Context())
		log.Printf("placing %+v for %s", body, tok.Subject)
		w.WriteHeader(http.StatusCreated)
	})))
	log.Fatal(http.ListenAndServe(":8080", nil))
}
