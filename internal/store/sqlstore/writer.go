package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxBatch caps the units in one transaction: enough to share one fsync among many callers, few
// enough that the write lock is never held long (a unit is typically one to five statements).
const maxBatch = 128

// ErrClosed is returned by writes to a Store after Close.
var ErrClosed = errors.New("sqlstore: store is closed")

// errUnitPanicked stands for a unit whose function panicked; the caller re-panics with the value.
var errUnitPanicked = errors.New("sqlstore: write function panicked")

// The life of a unit. A caller whose context ends while its unit is still queued marks it abandoned
// and returns at once; the writer claims a unit (queued -> running) right before running it and skips
// abandoned ones. Whoever wins the compare-and-swap decides, so a caller is never told "cancelled"
// about a write that went on to commit.
const (
	unitQueued int32 = iota
	unitRunning
	unitAbandoned
)

// unit is one write transaction submitted to the writer: a write method or an InTx call.
type unit struct {
	ctx        context.Context
	fn         func(tx *txStore) error
	state      atomic.Int32
	err        error // the result, valid once done is closed
	panicValue any
	done       chan struct{}
}

func (u *unit) claim() bool { return u.state.CompareAndSwap(unitQueued, unitRunning) }

func (u *unit) finish(err error) {
	u.err = err
	close(u.done)
}

// writer owns the write connection and commits units in batches (group commit). See the package
// documentation.
type writer struct {
	wc      *writeConn
	units   chan *unit
	mu      sync.RWMutex // guards closed against sends on a closed channel
	closed  bool
	stopped chan struct{}

	nUnits   atomic.Int64
	nCommits atomic.Int64
}

func newWriter(wc *writeConn) *writer {
	w := &writer{
		wc:      wc,
		units:   make(chan *unit, maxBatch),
		stopped: make(chan struct{}),
	}
	go w.run()
	return w
}

// do runs fn as one unit on the writer and waits for its result, which is only reported after the
// unit's transaction committed (or failed).
func (w *writer) do(ctx context.Context, fn func(tx *txStore) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u := &unit{ctx: ctx, fn: fn, done: make(chan struct{})}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.units <- u:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-u.done:
	case <-ctx.Done():
		if u.state.CompareAndSwap(unitQueued, unitAbandoned) {
			return ctx.Err()
		}
		<-u.done // already running: its outcome is decided by the commit, so wait for it
	}
	if u.panicValue != nil {
		panic(u.panicValue)
	}
	return u.err
}

// close stops accepting units, lets the writer finish every unit already submitted, and waits for it.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.units)
	}
	w.mu.Unlock()
	<-w.stopped
}

// run is the writer goroutine: it takes the units that are waiting, up to maxBatch, and runs them as
// one transaction. While it commits, new units queue up and form the next batch, so the batch size
// adapts to the load with no timer: one unit when idle, many when busy.
func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*unit, 0, maxBatch)
	for u := range w.units {
		batch = append(batch[:0], u)
	fill:
		for len(batch) < maxBatch {
			select {
			case u, ok := <-w.units:
				if !ok {
					break fill
				}
				batch = append(batch, u)
			default:
				break fill
			}
		}
		for rest := batch; len(rest) > 0; {
			rest = w.runTx(rest)
		}
		clear(batch)
	}
}

// Statements of the writer's transaction control. They are SQLite's: a PostgreSQL backend needs no
// group commit (the server groups commits itself) and would run each unit in its own transaction.
const (
	sqlBegin            = "BEGIN IMMEDIATE"
	sqlCommit           = "COMMIT"
	sqlRollback         = "ROLLBACK"
	sqlSavepoint        = "SAVEPOINT unit"
	sqlRollbackToUnit   = "ROLLBACK TO SAVEPOINT unit"
	sqlReleaseSavepoint = "RELEASE SAVEPOINT unit"
)

// runTx runs units in one transaction, commits, and reports every result. It returns the units it
// did not reach because the transaction broke under it; the caller gives them a fresh transaction.
//
// BEGIN IMMEDIATE takes the write lock up front: a deferred BEGIN would take it at the first write and
// could then fail with SQLITE_BUSY (which busy_timeout cannot wait out) if another process had
// written in between.
func (w *writer) runTx(batch []*unit) (rest []*unit) {
	ctx := context.Background()
	if _, err := w.wc.exec(ctx, sqlBegin); err != nil {
		err = fmt.Errorf("sqlstore: begin transaction: %w", err)
		for _, u := range batch {
			if u.claim() {
				u.finish(err)
			}
		}
		return nil
	}
	// ran holds the units that ran, with their own results in u.err, until the commit decides.
	// Failed units wait too: their failure may rest on another unit's uncommitted write (a unique
	// key it inserted), which must not be reported if that write never commits.
	ran := make([]*unit, 0, len(batch))
	for i, u := range batch {
		if !u.claim() {
			continue // the caller gave up while it was queued
		}
		if err := u.ctx.Err(); err != nil {
			u.finish(err)
			continue
		}
		w.nUnits.Add(1)
		err, broken := w.runUnit(u)
		u.err = err
		ran = append(ran, u)
		if broken != nil {
			// The transaction is gone: SQLite rolled it back (after an I/O error, say) or a savepoint
			// could not be released. The writes of every unit that ran are lost.
			_, _ = w.wc.exec(ctx, sqlRollback)
			lost := fmt.Errorf("sqlstore: transaction aborted, write not saved: %w", broken)
			for _, r := range ran {
				if r.err == nil {
					r.err = lost
				}
				r.finish(r.err)
			}
			return batch[i+1:]
		}
	}
	if _, err := w.wc.exec(ctx, sqlCommit); err != nil {
		_, _ = w.wc.exec(ctx, sqlRollback)
		err = fmt.Errorf("sqlstore: commit: %w", err)
		for _, u := range ran {
			u.finish(err)
		}
		return nil
	}
	w.nCommits.Add(1)
	for _, u := range ran {
		u.finish(u.err)
	}
	return nil
}

// runUnit runs one unit inside its own savepoint, so that its failure undoes its writes and nothing
// else. err is the unit's result; broken is set when the transaction can no longer be used.
func (w *writer) runUnit(u *unit) (err, broken error) {
	ctx := context.Background()
	if _, err := w.wc.exec(ctx, sqlSavepoint); err != nil {
		return err, err
	}
	tx := newTxStore(w.wc)
	err = call(u, tx)
	tx.finished.Store(true)
	if err != nil {
		if _, rbErr := w.wc.exec(ctx, sqlRollbackToUnit); rbErr != nil {
			return err, rbErr
		}
		if _, relErr := w.wc.exec(ctx, sqlReleaseSavepoint); relErr != nil {
			return err, relErr
		}
		return err, nil
	}
	if _, relErr := w.wc.exec(ctx, sqlReleaseSavepoint); relErr != nil {
		return relErr, relErr
	}
	return nil, nil
}

// call runs the unit's function, turning a panic into an error for the transaction and a value for
// the caller to re-panic with on its own goroutine, where it belongs.
func call(u *unit, tx *txStore) (err error) {
	defer func() {
		if p := recover(); p != nil {
			u.panicValue = p
			err = errUnitPanicked
		}
	}()
	return u.fn(tx)
}
