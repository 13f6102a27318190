package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/examples/tradepro"
	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/resource"
)

func newDemoCommand() *cobra.Command {
	var auto bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the DemoTradePro scenario end to end: server, trading API, agent and alice's authenticator",
		Long: "Starts a Countersign server (SQLite in a temporary directory), the DemoTradePro trading API and\n" +
			"the agent in one process. The agent reads a price and the portfolio on its own, then asks alice\n" +
			"to approve two orders; you answer for alice at the prompt (or --auto approves the first and\n" +
			"denies the second). The API places an order only with a token that approved exactly it, once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			if !auto && !isTerminalReader(in) {
				return errors.New("no terminal to answer for alice: run with --auto")
			}
			return runDemo(cmd.Context(), in, cmd.OutOrStdout(), auto)
		},
	}
	cmd.Flags().BoolVar(&auto, "auto", false, "answer for alice: approve the first order, deny the second")
	return cmd
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}

func runDemo(ctx context.Context, in io.Reader, out io.Writer, auto bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "countersign-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The authorization server, on a free loopback port.
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	secret := randomSecret()
	cfg := config.Dev(dir, addr)
	cfg.Clients[0].ClientSecret = secret
	cfg.CIBA.PollInterval = config.Duration{Duration: time.Second}
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, newLogger(cfg, io.Discard))
	if err != nil {
		return err
	}
	defer a.Close()
	ready := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- a.serve(ctx, func(string) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		return err
	}

	// alice's authenticator: a device key enrolled through the device API, as a phone would.
	link, _, err := a.svc.Invite(ctx, "alice")
	if err != nil {
		return err
	}
	dev, err := authenticator.Enroll(ctx, nil, link, "alice's demo authenticator")
	if err != nil {
		return err
	}

	// The DemoTradePro API, which trusts tokens from this issuer for its own URL.
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiURL := "http://" + apiLn.Addr().String()
	verifier, err := resource.New(resource.Config{Issuer: cfg.Issuer, Audience: apiURL})
	if err != nil {
		return err
	}
	api := &http.Server{Handler: tradepro.NewAPI(verifier).Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = api.Serve(apiLn) }()
	defer api.Close()

	agentClient, err := client.New(ctx, client.Config{Issuer: cfg.Issuer, ClientID: cfg.Clients[0].ClientID, ClientSecret: secret})
	if err != nil {
		return err
	}
	agent := tradepro.NewAgent(agentClient, apiURL, "alice")

	fmt.Fprintf(out, "DemoTradePro: Countersign at %s, trading API at %s\n\n", cfg.Issuer, apiURL)
	price, err := agent.GetStockPrice(ctx, "NVDA")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "agent  getStockPrice(NVDA) = %s.%02d\n", tradepro.Dollars(price), price%100)
	pf, err := agent.GetPortfolio(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "agent  getPortfolio() = cash %s, %v\n", tradepro.Dollars(pf.CashCents), pf.Positions)

	answers := bufio.NewReader(in)
	orders := []tradepro.Order{{Symbol: "NVDA", Side: "BUY", Quantity: 10, OrderType: "market"}, {Symbol: "AAPL", Side: "SELL", Quantity: 5, OrderType: "market"}}
	for i, o := range orders {
		fmt.Fprintf(out, "\nagent  createOrder(%s): needs alice's approval\n", o)
		type result struct {
			c   tradepro.Confirmation
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := agent.CreateOrder(ctx, fmt.Sprintf("call-%d", i), o)
			done <- result{c, err}
		}()
		approve := i == 0
		if err := answerAsAlice(ctx, dev, answers, out, auto, approve); err != nil {
			return err
		}
		res := <-done
		var denied bool
		switch {
		case errors.Is(res.err, client.ErrDenied):
			denied = true
			fmt.Fprintf(out, "agent  alice declined: the order was not placed\n")
		case res.err != nil:
			return res.err
		default:
			fmt.Fprintf(out, "api    order #%d placed: %s, filled at %s.%02d, approved by %s\n", res.c.OrderID, res.c.Order, tradepro.Dollars(res.c.PriceCents), res.c.PriceCents%100, res.c.ApprovedBy)
			receipt, err := a.svc.Receipt(ctx, res.c.Receipt)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "audit  receipt %s: %s by device %s over shown_sha256 %s, signature verified: %v\n",
				receipt.RequestID, receipt.Decision, receipt.Device.ID, receipt.ShownSHA256, receipt.Verified)
		}
		if denied || i != 0 {
			continue
		}
		// The token approved one order, once: show what the API does with a replay.
		err := agent.PostOrder(ctx, agent.LastOrderToken(), o, &tradepro.Confirmation{})
		fmt.Fprintf(out, "api    the same token again: %v\n", err)
	}
	pf, err = agent.GetPortfolio(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nagent  getPortfolio() = cash %s, %v\n", tradepro.Dollars(pf.CashCents), pf.Positions)
	fmt.Fprintf(out, "\nEvery step is in the audit log; the access token named the device-signed receipt.\n")
	cancel()
	<-served
	return nil
}

// answerAsAlice waits for the pending request on alice's device, shows it as her authenticator
// would, and decides: by asking on the terminal, or as told with --auto.
func answerAsAlice(ctx context.Context, dev *authenticator.Device, answers *bufio.Reader, out io.Writer, auto, approve bool) error {
	var v authz.RequestView
	for {
		pending, err := dev.Pending(ctx)
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			v = pending[0]
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintln(out, "alice's authenticator shows:")
	printRequest(out, v)
	decision := domain.DecisionDeny
	if auto {
		if approve {
			decision = domain.DecisionApprove
		}
		fmt.Fprintf(out, "alice  %s (--auto)\n", pastTense(decision))
	} else {
		fmt.Fprint(out, "Approve? [y/N] ")
		line, _ := answers.ReadString('\n')
		if strings.EqualFold(strings.TrimSpace(line), "y") {
			decision = domain.DecisionApprove
		}
	}
	_, err := dev.Decide(ctx, v, decision)
	return err
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
