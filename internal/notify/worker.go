// Package notify delivers messages outside the process: CIBA ping and push callbacks to clients
// and, through channels, notifications to people. Every message goes through the outbox, written in
// the same transaction as the state change that causes it; the Worker here leases due messages,
// hands each to the Sender for its kind, and records the outcome, retrying with backoff until the
// message is delivered or declared dead.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// Sender delivers one kind of outbox message. An error means "try again later".
type Sender interface {
	Send(ctx context.Context, m domain.OutboxMessage) error
}

// PermanentError marks a failure that retrying cannot fix (the message is declared dead at once).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// WorkerOptions tune delivery.
type WorkerOptions struct {
	// Lease is how long a claimed message is reserved for this worker; after it another worker (or
	// this one after a restart) may take it again.
	Lease time.Duration
	// MaxAttempts is how many deliveries are tried before the message is dead.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the exponential backoff between attempts.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Concurrency is how many messages are delivered at once.
	Concurrency int
	// PollEvery is how often the outbox is checked without a kick (messages due for retry, messages
	// from other replicas).
	PollEvery time.Duration
	// SendTimeout bounds one delivery.
	SendTimeout time.Duration
}

func (o *WorkerOptions) applyDefaults() {
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 2 * time.Second
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 15 * time.Second
	}
}

// Worker delivers outbox messages.
type Worker struct {
	store   domain.Store
	clock   domain.Clock
	senders map[string]Sender
	opts    WorkerOptions
	log     *slog.Logger
	kick    chan struct{}
}

// NewWorker returns a worker that delivers messages of the kinds in senders.
func NewWorker(store domain.Store, clock domain.Clock, senders map[string]Sender, opts WorkerOptions, log *slog.Logger) *Worker {
	opts.applyDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{store: store, clock: clock, senders: senders, opts: opts, log: log, kick: make(chan struct{}, 1)}
}

// Kick wakes the worker now (a message was just enqueued). It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	ticker := time.NewTicker(w.opts.PollEvery)
	defer ticker.Stop()
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("outbox delivery", "error", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.kick:
		}
	}
}

// RunOnce claims the messages due now, delivers them, records the outcomes, and returns how many it
// handled.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.clock.Now()
	msgs, err := w.store.ClaimOutbox(ctx, now, now.Add(w.opts.Lease), w.opts.Concurrency*4)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	sem := make(chan struct{}, w.opts.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := w.deliver(ctx, m); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(msgs), firstErr
}

// deliver sends one message and records the outcome. It returns only errors of the store.
func (w *Worker) deliver(ctx context.Context, m domain.OutboxMessage) error {
	sender, ok := w.senders[m.Kind]
	var sendErr error
	if !ok {
		sendErr = &PermanentError{Err: fmt.Errorf("no sender for outbox kind %q", m.Kind)}
	} else {
		sctx, cancel := context.WithTimeout(ctx, w.opts.SendTimeout)
		sendErr = sender.Send(sctx, m)
		cancel()
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease runs out and the message is tried again
	}
	now := w.clock.Now()
	var permanent *PermanentError
	dead := sendErr != nil && (errors.As(sendErr, &permanent) || m.Attempts >= w.opts.MaxAttempts)
	return w.store.InTx(ctx, func(tx domain.Store) error {
		// Attempts was counted when the message was claimed, before this attempt was made.
		updated, err := tx.UpdateOutbox(ctx, m.ID, func(o *domain.OutboxMessage) error {
			o.LeaseUntil = time.Time{}
			switch {
			case sendErr == nil:
				o.Status, o.DeliveredAt, o.LastError = domain.OutboxDelivered, now, ""
				o.Payload = nil // a push payload holds tokens: keep them no longer than needed
			case dead:
				o.Status, o.LastError = domain.OutboxDead, truncate(sendErr.Error(), 500)
				o.Payload = nil
			default:
				o.LastError = truncate(sendErr.Error(), 500)
				o.NextAttemptAt = now.Add(w.backoff(o.Attempts))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if sendErr != nil {
			w.log.Warn("outbox delivery failed", "id", m.ID, "kind", m.Kind, "attempt", updated.Attempts, "dead", dead, "error", sendErr)
		}
		if !dead {
			return nil
		}
		detail := fmt.Sprintf(`{"outbox_id":%d,"kind":%q,"target":%q,"attempts":%d,"error":%q}`,
			m.ID, m.Kind, m.Target, updated.Attempts, updated.LastError)
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditOutboxDead, RequestID: m.RequestID, Detail: []byte(detail)})
	})
}

// backoff is exponential with full jitter, so that retries from many messages spread out.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.opts.BaseBackoff << min(attempts-1, 20)
	if d <= 0 || d > w.opts.MaxBackoff {
		d = w.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
