package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/countersign/countersign/client"
)

// Exit codes of `countersign request` besides 0 (approved) and 1 (any other error).
const (
	exitDenied  = 2
	exitExpired = 3
)

// requestGrace is how long after --timeout the command still waits for the server to say the
// request expired (it expires at --timeout too) before it gives up on its own.
const requestGrace = 10 * time.Second

func newRequestCommand() *cobra.Command {
	var issuer, clientID, clientSecret, user, binding, details, scope string
	var audience []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "request --issuer URL --client-id ID --user USER [--binding-message TEXT] [--authorization-details JSON|@FILE]",
		Short: "Ask a user to approve an action (CIBA) and print the token response",
		Long: `Ask a user to approve an action through CIBA, wait for the decision, and print the token
response JSON on stdout. The client secret may come from COUNTERSIGN_CLIENT_SECRET instead of
--client-secret, so that it does not show in the process list.

Exit status: 0 approved, 2 denied, 3 expired (nobody decided in time), 1 any other error (the
OAuth error on stderr). --timeout also sets requested_expiry, so the request leaves the user's
device when the command stops waiting; an interrupt (Ctrl-C) cancels the request on the server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientSecret == "" {
				clientSecret = os.Getenv("COUNTERSIGN_CLIENT_SECRET")
			}
			var missing []string
			for _, f := range []struct{ flag, v string }{{"--issuer", issuer}, {"--client-id", clientID}, {"--user", user}} {
				if f.v == "" {
					missing = append(missing, f.flag)
				}
			}
			if clientSecret == "" {
				missing = append(missing, "--client-secret (or COUNTERSIGN_CLIENT_SECRET)")
			}
			if len(missing) > 0 {
				return fmt.Errorf("required: %s", strings.Join(missing, ", "))
			}
			req := client.Request{User: user, BindingMessage: binding, Scope: scope, Audience: audience, RequestedExpiry: timeout}
			if details != "" {
				d, err := readDetails(details, cmd.InOrStdin())
				if err != nil {
					return err
				}
				req.AuthorizationDetails = d
			}

			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout+requestGrace)
				defer cancel()
			}
			c, err := client.New(ctx, client.Config{Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret})
			if err != nil {
				return err
			}
			prog := startProgress(cmd.ErrOrStderr(), user)
			req.OnPending = func(p *client.Pending) {
				// Number matching: the person must pick this code on their device. Shown even when
				// stderr is not a terminal, since without it they cannot approve.
				if code := p.VerificationCode(); code != "" {
					prog.note(fmt.Sprintf("verification code %s: %s must choose it on their device", code, user))
				}
			}
			tok, err := c.RequestApproval(ctx, req)
			prog.stop()
			switch {
			case errors.Is(err, client.ErrDenied):
				return &exitError{code: exitDenied, err: err}
			case errors.Is(err, client.ErrExpired):
				return &exitError{code: exitExpired, err: err}
			case errors.Is(err, context.DeadlineExceeded):
				return fmt.Errorf("no decision within %s; the request was cancelled", timeout)
			case errors.Is(err, context.Canceled):
				return errors.New("interrupted; the request was cancelled")
			case err != nil:
				return err
			}
			// Exactly the server's token response, for scripts to read with jq.
			return printJSON(cmd.OutOrStdout(), tok.TokenResponse)
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "", "the Countersign issuer URL")
	f.StringVar(&clientID, "client-id", "", "the agent's client_id")
	f.StringVar(&clientSecret, "client-secret", "", "the agent's client secret (default $COUNTERSIGN_CLIENT_SECRET)")
	f.StringVar(&user, "user", "", "who approves: a subject or email (login_hint)")
	f.StringVar(&binding, "binding-message", "", "short text shown on the user's device, such as \"Buy 10 NVDA\"")
	f.StringVar(&details, "authorization-details", "", "RAR authorization_details: a JSON array, or @FILE (@- for stdin)")
	f.StringVar(&scope, "scope", "openid", "space-separated scopes")
	f.StringArrayVar(&audience, "audience", nil, "API the token is for (repeatable)")
	f.DurationVar(&timeout, "timeout", 0, "stop waiting after this long (default: until the request expires)")
	return cmd
}

// readDetails reads authorization_details given inline, or as @FILE / @- (stdin).
func readDetails(v string, stdin io.Reader) ([]any, error) {
	raw := []byte(v)
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if name == "-" {
			raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			raw, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("--authorization-details: %w", err)
		}
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("--authorization-details must be a JSON array of objects: %w", err)
	}
	out := make([]any, len(elems))
	for i, e := range elems {
		out[i] = e
	}
	return out, nil
}

// progress keeps "waiting for USER to approve... 12s" up to date on a terminal. Elsewhere (a pipe,
// a log file) it prints nothing, so stderr holds only what a script must see.
type progress struct {
	w        io.Writer
	mu       sync.Mutex // one writer at a time: the ticker and note
	tty      bool
	done     chan struct{}
	finished chan struct{}
}

func startProgress(w io.Writer, user string) *progress {
	p := &progress{w: w, tty: isTerminal(w), done: make(chan struct{}), finished: make(chan struct{})}
	if !p.tty {
		close(p.finished)
		return p
	}
	start := time.Now()
	go func() {
		defer close(p.finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			p.mu.Lock()
			fmt.Fprintf(w, "\r\033[Kwaiting for %s to approve... %ds", user, int(time.Since(start).Seconds()))
			p.mu.Unlock()
			select {
			case <-p.done:
				p.mu.Lock()
				fmt.Fprint(w, "\r\033[K") // erase the line
				p.mu.Unlock()
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// note prints a line above the progress line.
func (p *progress) note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, line)
}

// stop erases the progress line.
func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.finished
}
