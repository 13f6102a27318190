package config

import (
	"net"
)

// Defaults of [Dev].
const (
	// DevDataDir is where `countersign dev` keeps its data when no directory is given.
	DevDataDir = "./countersign-data"
	// DevListen is the address `countersign dev` binds when none is given.
	DevListen = "127.0.0.1:8080"
)

// devDetailTypes are the demo's authorization_details types, written as an operator would write
// them in the config file.
const devDetailTypes = `
trade_order:
  display: "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})"
  schema:
    type: object
    required: [symbol, side, quantity]
    properties:
      symbol: {type: string, pattern: "^[A-Z.]{1,10}$"}
      side: {enum: [BUY, SELL]}
      quantity: {type: integer, minimum: 1}
      order_type: {enum: [market, limit], default: market}
      limit_price: {type: number}
payment_initiation:
  display: "Pay {{.instructedAmount.amount}} {{.instructedAmount.currency}} to {{.creditorName}}"
  schema:
    type: object
    required: [instructedAmount, creditorName]
    properties:
      instructedAmount:
        type: object
        required: [currency, amount]
        properties: {currency: {type: string}, amount: {type: string}}
      creditorName: {type: string}
`

// Dev returns the zero-config setup of `countersign dev`, with defaults applied:
//
//   - issuer http://<listen>/ (an unspecified host such as ":8080" or "0.0.0.0:8080" becomes
//     localhost in the issuer), listening on listen (DevListen when empty);
//   - SQLite in dataDir (DevDataDir when empty), relative to the working directory;
//   - user alice (alice@example.com, "Alice Example");
//   - client "agent" ("DemoTradePro Agent"), poll mode, allowed trade_order and
//     payment_initiation, without refresh tokens;
//   - the trade_order and payment_initiation authorization_details types.
//
// The agent's ClientSecret is left empty: the caller generates one (or reads it from the data
// directory) and sets Clients[0].ClientSecret. Until then Validate reports it missing.
func Dev(dataDir, listen string) *Config {
	if dataDir == "" {
		dataDir = DevDataDir
	}
	if listen == "" {
		listen = DevListen
	}
	c := &Config{
		Issuer:  "http://" + devIssuerHost(listen) + "/",
		Listen:  listen,
		DataDir: dataDir,
		Users:   []User{{Sub: "alice", Email: "alice@example.com", Name: "Alice Example"}},
		Clients: []Client{{
			ClientID:                     "agent",
			Name:                         "DemoTradePro Agent",
			BackchannelTokenDeliveryMode: "poll",
			AuthorizationDetailsTypes:    []string{"trade_order", "payment_initiation"},
		}},
	}
	d := newDecoder("")
	d.document([]byte(devDetailTypes), &c.AuthorizationDetailsTypes)
	if err := d.err(); err != nil {
		panic("config: the built-in dev authorization_details types do not parse: " + err.Error())
	}
	c.setDefaults("")
	return c
}

// devIssuerHost turns a listen address into the host:port of the dev issuer.
func devIssuerHost(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	// localhost rather than an address: passkeys (WebAuthn) need a domain name, and browsers treat
	// http://localhost as a secure context, as the authenticator app's service worker needs.
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsUnspecified() || ip.IsLoopback())) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
