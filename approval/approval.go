// Package approval gates an agent's tools behind a person's approval. A Gate wraps a tool
// function: calling it builds an approval request from the tool's arguments, obtains the user's
// approval through Countersign (client package), and only then runs the tool with the token,
// whose authorization_details say exactly what was approved (the API the tool calls can check them
// with the resource package).
//
//	gate := approval.NewGate(agent, tradeRequest, placeOrder)
//	receipt, err := gate.Call(ctx, toolCallID, TradeArgs{Symbol: "NVDA", Side: "BUY", Quantity: 10})
//	// errors.Is(err, client.ErrDenied): the user said no; the tool did not run
//
// Calls are idempotent per tool-call ID: a retried call (the agent framework timed out, the
// process restarted) does not ask the user again. It resumes the pending request, or reuses the
// token already obtained, or repeats the denial. What a call ID has reached is kept in a Store; the
// default is in memory, and a shared one (a database) carries it across processes.
package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/countersign/countersign/client"
)

// DefaultDenialTTL is how long a denial is remembered for its call ID.
const DefaultDenialTTL = 10 * time.Minute

// BuildFunc turns a tool's arguments into the approval request to send: who approves, the binding
// message, and the authorization_details that describe exactly this call.
type BuildFunc[A any] func(ctx context.Context, args A) (client.Request, error)

// ToolFunc is the tool itself; it runs only after approval, with the token.
type ToolFunc[A, R any] func(ctx context.Context, tok *client.Token, args A) (R, error)

// Gate runs a tool only after approval. It is safe for concurrent use.
type Gate[A, R any] struct {
	client *client.Client
	build  BuildFunc[A]
	tool   ToolFunc[A, R]
	opts   options
	locks  keyedMutex
}

type options struct {
	store     Store
	denialTTL time.Duration
	interrupt bool
	now       func() time.Time
}

// Option configures a Gate.
type Option func(*options)

// WithStore keeps the state of each call ID in s instead of in memory.
func WithStore(s Store) Option { return func(o *options) { o.store = s } }

// WithDenialTTL sets how long a denial is remembered for its call ID (default DefaultDenialTTL):
// within it a retried call is denied again without asking.
func WithDenialTTL(d time.Duration) Option { return func(o *options) { o.denialTTL = d } }

// WithInterrupts makes Call return at once with an *Interrupt error while the user has not decided,
// instead of blocking: the pattern of chat interfaces that answer "waiting for your approval" and
// call the tool again (with the same call ID) later. Each such call polls the server at most once,
// keeping to the poll interval.
func WithInterrupts() Option { return func(o *options) { o.interrupt = true } }

// NewGate wraps tool: Call builds the approval request with build, waits for approval through c,
// and runs tool with the token.
func NewGate[A, R any](c *client.Client, build BuildFunc[A], tool ToolFunc[A, R], opts ...Option) *Gate[A, R] {
	o := options{denialTTL: DefaultDenialTTL, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if o.store == nil {
		o.store = NewMemoryStore()
	}
	return &Gate[A, R]{client: c, build: build, tool: tool, opts: o}
}

// Interrupt is returned by Call with WithInterrupts while the user has not decided. Call the tool
// again with the same call ID, after NextPoll, to continue. errors.Is(err, client.ErrPending)
// holds for it.
type Interrupt struct {
	CallID         string
	User           string
	BindingMessage string
	// ExpiresAt is when the request expires if the user does not decide.
	ExpiresAt time.Time
	// NextPoll is when calling again can bring news.
	NextPoll time.Time
}

func (i *Interrupt) Error() string {
	return fmt.Sprintf("approval: waiting for %s to approve %q (tool call %s)", i.User, i.BindingMessage, i.CallID)
}

// Is makes errors.Is(err, client.ErrPending) true.
func (i *Interrupt) Is(target error) bool { return target == client.ErrPending }

// Call runs the tool for the call ID once the user has approved the request built from args. The
// error is the outcome's (client.ErrDenied, client.ErrExpired, client.ErrNoAuthenticator, an
// *oauth.Error), ctx's, an *Interrupt (WithInterrupts), or the tool's own.
//
// If ctx ends while waiting, the request stays pending on the server and a later call with the
// same ID resumes it; use Cancel to withdraw it.
func (g *Gate[A, R]) Call(ctx context.Context, callID string, args A) (R, error) {
	var zero R
	if callID == "" {
		return zero, errors.New("approval: a tool-call ID is required (it makes retries idempotent)")
	}
	// One call per ID at a time in this process: a concurrent retry waits, then finds the
	// request or token the first one stored.
	unlock := g.locks.lock(callID)
	defer unlock()

	tok, err := g.approve(ctx, callID, args)
	if err != nil {
		return zero, err
	}
	return g.tool(ctx, tok, args)
}

// approve returns a token for the call ID: stored, or obtained now.
func (g *Gate[A, R]) approve(ctx context.Context, callID string, args A) (*client.Token, error) {
	store := g.opts.store
	rec, found, err := store.Get(ctx, callID)
	if err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	now := g.opts.now()
	var p *client.Pending
	switch {
	case found && rec.Token.Valid(now):
		return rec.Token, nil
	case found && rec.Denied && now.Before(rec.Until):
		return nil, fmt.Errorf("approval: tool call %s: %w", callID, client.ErrDenied)
	case found && len(rec.Pending) > 0:
		// Resume the request this call ID already made; if it cannot be (another client's), ask anew.
		p, _ = g.client.Resume(rec.Pending)
	}
	resumed := p != nil
	if !resumed {
		req, err := g.build(ctx, args)
		if err != nil {
			return nil, err
		}
		if p, err = g.client.Start(ctx, req); err != nil {
			return nil, err
		}
		if err := g.savePending(ctx, callID, p); err != nil {
			// Without the record a retry would prompt again: withdraw this prompt instead.
			g.withdraw(ctx, p)
			return nil, err
		}
	}

	var tok *client.Token
	if g.opts.interrupt {
		// A new request is polled at once (the first poll is never too soon, and an auto-approval
		// policy may have decided already); a resumed one only once its interval has passed.
		if resumed && g.opts.now().Before(p.NextPoll()) {
			return nil, interruptOf(callID, p)
		}
		tok, err = p.Poll(ctx)
		// Undecided, or a poll that failed on the way (the network, the server): keep the request
		// for the next call.
		if errors.Is(err, client.ErrPending) || err != nil && !p.Done() {
			if serr := g.savePending(ctx, callID, p); serr != nil {
				return nil, serr
			}
			if !errors.Is(err, client.ErrPending) {
				return nil, err
			}
			return nil, interruptOf(callID, p)
		}
	} else {
		tok, err = p.Wait(ctx)
		if err != nil && ctx.Err() != nil {
			// Still pending: a retry resumes it. Saved again so that the retry keeps to the
			// interval counted from the poll just abandoned (the server counts it).
			_ = g.savePending(context.WithoutCancel(ctx), callID, p)
			return nil, err
		}
	}
	return tok, g.settle(ctx, callID, p, tok, err)
}

// withdraw cancels a request nobody will follow, best effort: the user should not be asked for
// nothing.
func (g *Gate[A, R]) withdraw(ctx context.Context, p *client.Pending) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = p.Cancel(cctx)
}

// settle records the outcome of a request and returns err.
func (g *Gate[A, R]) settle(ctx context.Context, callID string, p *client.Pending, tok *client.Token, err error) error {
	store := g.opts.store
	var serr error
	switch {
	case err == nil:
		until := tok.Expiry
		if until.IsZero() {
			until = g.opts.now().Add(time.Hour)
		}
		serr = store.Set(ctx, callID, Record{Token: tok, Until: until})
	case errors.Is(err, client.ErrDenied):
		serr = store.Set(ctx, callID, Record{Denied: true, Until: g.opts.now().Add(g.opts.denialTTL)})
	default:
		// Expired, cancelled, or failed: a retry may ask again, so this request must not linger.
		g.withdraw(ctx, p)
		serr = store.Delete(ctx, callID)
	}
	if err == nil && serr != nil {
		return fmt.Errorf("approval: store: %w", serr)
	}
	return err
}

func (g *Gate[A, R]) savePending(ctx context.Context, callID string, p *client.Pending) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := g.opts.store.Set(ctx, callID, Record{Pending: raw, Until: p.ExpiresAt()}); err != nil {
		return fmt.Errorf("approval: store: %w", err)
	}
	return nil
}

func interruptOf(callID string, p *client.Pending) *Interrupt {
	return &Interrupt{CallID: callID, User: p.User(), BindingMessage: p.BindingMessage(), ExpiresAt: p.ExpiresAt(), NextPoll: p.NextPoll()}
}

// Cancel withdraws the call ID's pending request, if any, and forgets the call ID.
func (g *Gate[A, R]) Cancel(ctx context.Context, callID string) error {
	unlock := g.locks.lock(callID)
	defer unlock()
	rec, found, err := g.opts.store.Get(ctx, callID)
	if err != nil {
		return fmt.Errorf("approval: store: %w", err)
	}
	if found && len(rec.Pending) > 0 {
		if p, err := g.client.Resume(rec.Pending); err == nil {
			if err := p.Cancel(ctx); err != nil {
				return err
			}
		}
	}
	return g.opts.store.Delete(ctx, callID)
}

// Forget drops what the call ID reached (a token, a denial), so the next call asks again.
func (g *Gate[A, R]) Forget(ctx context.Context, callID string) error {
	unlock := g.locks.lock(callID)
	defer unlock()
	return g.opts.store.Delete(ctx, callID)
}

// keyedMutex is a mutex per key, dropped when nobody holds or waits for it.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
