// Package client is the Go SDK for agents: it asks a Countersign server (or any OpenID CIBA
// server) for a person's approval of an action described by RFC 9396 authorization_details, waits
// for the decision, and returns an access token that carries exactly what was approved.
//
// The blocking form is three lines:
//
//	c, err := client.New(ctx, client.Config{Issuer: "https://countersign.example/", ClientID: "agent", ClientSecret: secret})
//	tok, err := c.RequestApproval(ctx, client.Request{User: "alice", BindingMessage: "Buy 10 NVDA", AuthorizationDetails: details})
//	// errors.Is(err, client.ErrDenied), client.ErrExpired, client.ErrNoAuthenticator; *oauth.Error for the rest
//
// RequestApproval polls the token endpoint as CIBA asks (honouring interval, slow_down and
// Retry-After). When the server advertises the Prefer: wait long poll
// (countersign_long_poll_max_wait in discovery) each poll is held until the decision, so the token
// arrives within milliseconds of it; a client registered for ping mode can instead run a
// PingHandler. Cancelling ctx cancels the request on the server, so the person is not left with a
// prompt nobody waits for.
//
// For chat interfaces that cannot block, Start returns a Pending: poll it once with Pending.Poll,
// block on it with Pending.Wait, or serialize it (it is JSON) and resume it later, in another
// process, with Client.Resume.
package client
