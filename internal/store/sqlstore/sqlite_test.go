package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

var errBoom = errors.New("boom")

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenSQLite(t.Context(), path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newTestStore(t *testing.T) *Store {
	return openTestStore(t, filepath.Join(t.TempDir(), "test.db"))
}

var t0 = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

func testUser(subject string) domain.User {
	return domain.User{Subject: subject, Email: subject + "@example.com", CreatedAt: t0}
}

func testRequest(id, subject string) domain.Request {
	return domain.Request{
		ID: id, AuthReqIDHash: []byte("hash-" + id), ClientID: "agent", Subject: subject,
		Status: domain.StatusPending, CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), Interval: 5 * time.Second,
	}
}

// blockWriter occupies the writer with a unit that waits, so that units submitted meanwhile queue up
// and form the next batch. The returned function lets the blocking unit finish.
func blockWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.w.do(context.Background(), func(*txStore) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("blocking unit: %v", err)
		}
	}
}

// waitQueued waits until n units wait for the writer.
func waitQueued(s *Store, n int) {
	for len(s.w.units) < n {
		runtime.Gosched()
	}
}

func TestOpenSQLite_MigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	for i := range 3 {
		s, err := OpenSQLite(t.Context(), path, SQLiteOptions{})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if i == 0 {
			if err := s.PutUser(t.Context(), testUser("alice")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.GetUser(t.Context(), "alice"); err != nil {
			t.Errorf("open #%d: data written before is gone: %v", i+1, err)
		}
		var n, latest int
		if err := s.readDB.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &latest); err != nil {
			t.Fatal(err)
		}
		ms, _ := loadMigrations("migrations/sqlite")
		if n != len(ms) || latest != len(ms) {
			t.Errorf("open #%d: schema_migrations has %d rows up to %d, want %d", i+1, n, latest, len(ms))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenSQLite_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := OpenSQLite(t.Context(), path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.w.do(t.Context(), func(tx *txStore) error {
		_, err := tx.exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = OpenSQLite(t.Context(), path, SQLiteOptions{})
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("opening a database from a newer version: got %v, want a refusal", err)
	}
}

func TestOpenSQLite_FileMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s := openTestStore(t, path)
	if err := s.PutUser(t.Context(), testUser("alice")); err != nil { // creates the -wal file
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
}

func TestOpenSQLite_MissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := OpenSQLite(t.Context(), filepath.Join(dir, "test.db"), SQLiteOptions{})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("opening in a missing directory: got %v, want an error naming the directory", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing directory was created")
	}
}

func TestOpenSQLite_Options(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		path, sync string
		ok         bool
	}{
		{filepath.Join(dir, "a.db"), "", true},
		{filepath.Join(dir, "b.db"), "FULL", true},
		{filepath.Join(dir, "c.db"), "normal", true},
		{filepath.Join(dir, "d.db"), "off", false},
		{":memory:", "", false},
		{"", "", false},
		{filepath.Join(dir, "odd ?#% name.db"), "", true},
	} {
		s, err := OpenSQLite(t.Context(), c.path, SQLiteOptions{Synchronous: c.sync})
		if (err == nil) != c.ok {
			t.Errorf("OpenSQLite(%q, synchronous %q): error %v, want ok=%v", c.path, c.sync, err, c.ok)
		}
		if err == nil {
			if _, err := os.Stat(c.path); err != nil {
				t.Errorf("OpenSQLite(%q): the file is not where asked: %v", c.path, err)
			}
			s.Close()
		}
	}
}

// Several processes may open the same new file at once: the CLI while the server starts.
func TestOpenSQLite_ConcurrentOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenSQLite(t.Context(), path, SQLiteOptions{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	for i, s := range stores {
		if err := s.PutUser(t.Context(), testUser(fmt.Sprint("user-", i))); err != nil {
			t.Errorf("store #%d: %v", i, err)
		}
	}
	users, err := stores[0].ListUsers(t.Context())
	if err != nil || len(users) != n {
		t.Errorf("ListUsers: %d users, error %v; want %d", len(users), err, n)
	}
}

// The CLI and the server each open the file: each sees the other's writes, and their writers take
// turns.
func TestTwoStoresOnOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	server, cli := openTestStore(t, path), openTestStore(t, path)
	ctx := t.Context()
	if err := cli.PutUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	if err := server.CreateRequest(ctx, testRequest("req", "alice")); err != nil {
		t.Fatalf("the server writes for a user the CLI created: %v", err)
	}
	if _, err := cli.UpdateRequest(ctx, "req", func(r *domain.Request) error {
		return r.Cancel(t0.Add(time.Second), "agent")
	}); err != nil {
		t.Fatal(err)
	}
	r, err := server.GetRequestByAuthReqID(ctx, []byte("hash-req"))
	if err != nil || r.Status != domain.StatusCancelled {
		t.Fatalf("the server reads the CLI's update: status %s, error %v", r.Status, err)
	}

	// Both writers at once, racing for one nonce and writing their own.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 40 {
		s := []*Store{server, cli}[i%2]
		wg.Go(func() {
			if err := s.UseNonce(ctx, fmt.Sprint("own-", i), t0.AddDate(100, 0, 0)); err != nil {
				t.Errorf("UseNonce: %v", err)
			}
			switch err := s.UseNonce(ctx, "shared", t0.AddDate(100, 0, 0)); {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, domain.ErrAlreadyExists):
				t.Errorf("UseNonce shared: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("shared nonce used %d times across two stores, want 1", wins)
	}
}

// One unit of a batch fails: its writes are undone, the other units of the same transaction commit.
func TestGroupCommit_FailingUnitFailsAlone(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if err := s.PutUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, testRequest("existing", "alice")); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	commits := s.WriterStats().Commits
	failing := map[int]error{3: errBoom, 7: domain.ErrAlreadyExists}

	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.InTx(ctx, func(tx domain.Store) error {
				if err := tx.CreateRequest(ctx, testRequest(fmt.Sprint("req-", i), "alice")); err != nil {
					return err
				}
				switch i {
				case 3:
					return errBoom // after writing
				case 7:
					return tx.CreateRequest(ctx, testRequest("existing", "alice")) // a constraint violation
				}
				return nil
			})
		})
	}
	waitQueued(s, n)
	release()
	wg.Wait()

	for i, err := range errs {
		want := failing[i]
		switch {
		case want != nil && !errors.Is(err, want):
			t.Errorf("failing unit %d: got %v, want %v", i, err, want)
		case want == nil && err != nil:
			t.Errorf("unit %d in the same batch as failing ones: %v", i, err)
		}
	}
	for i := range n {
		_, err := s.GetRequest(ctx, fmt.Sprint("req-", i))
		if failing[i] != nil && !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("failing unit %d's write is visible: %v", i, err)
		}
		if failing[i] == nil && err != nil {
			t.Errorf("unit %d's write is missing: %v", i, err)
		}
	}
	if got := s.WriterStats().Commits - commits; got != 2 {
		t.Errorf("%d commits for the blocking unit and one batch, want 2", got)
	}
}

// A unit that breaks the transaction itself (here by ending it; in life, an I/O error after which
// SQLite rolls back) fails every unit that ran in it, and the units after it get a new transaction.
func TestGroupCommit_BrokenTransaction(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if err := s.PutUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	results := make([]chan error, 3)
	submit := func(i int, fn func(tx *txStore) error) {
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.w.do(ctx, fn) }()
		waitQueued(s, i+1)
	}
	submit(0, func(tx *txStore) error { return tx.CreateRequest(ctx, testRequest("before", "alice")) })
	submit(1, func(tx *txStore) error {
		_, err := tx.exec(ctx, "ROLLBACK")
		return err
	})
	submit(2, func(tx *txStore) error { return tx.CreateRequest(ctx, testRequest("after", "alice")) })
	release()

	if err := <-results[0]; err == nil {
		t.Error("a unit whose transaction was rolled back under it reported success")
	}
	if err := <-results[1]; err == nil {
		t.Error("the unit that broke the transaction reported success")
	}
	if err := <-results[2]; err != nil {
		t.Errorf("the unit after the broken transaction: %v", err)
	}
	if _, err := s.GetRequest(ctx, "before"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the rolled back unit's write: %v, want not found", err)
	}
	if _, err := s.GetRequest(ctx, "after"); err != nil {
		t.Errorf("the next unit's write: %v", err)
	}
	// And the writer goes on.
	if err := s.PutUser(ctx, testUser("bob")); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommit_ContextDoneBeforeRun(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutUser(ctx, testUser("alice")); !errors.Is(err, context.Canceled) {
		t.Errorf("write with a cancelled context: %v, want context.Canceled", err)
	}

	// Cancelled while queued: the caller returns at once and the unit never runs.
	release := blockWriter(t, s)
	ctx, cancel = context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() { result <- s.PutUser(ctx, testUser("bob")) }()
	waitQueued(s, 1)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("write cancelled while queued: %v, want context.Canceled", err)
	}
	release()
	if err := s.PutUser(t.Context(), testUser("carol")); err != nil { // runs after the abandoned unit
		t.Fatal(err)
	}
	if _, err := s.GetUser(t.Context(), "bob"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the abandoned write ran: %v", err)
	}
}

func TestGroupCommit_PanicReachesCaller(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("recovered %v, want the unit's panic value", p)
			}
		}()
		_ = s.InTx(ctx, func(tx domain.Store) error {
			if err := tx.PutUser(ctx, testUser("ghost")); err != nil {
				return err
			}
			panic("kaboom")
		})
	}()
	if _, err := s.GetUser(ctx, "ghost"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the panicking unit's write: %v, want not found", err)
	}
	if err := s.PutUser(ctx, testUser("alice")); err != nil {
		t.Errorf("the writer after a panic: %v", err)
	}
}

func TestClose_DrainsQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := OpenSQLite(t.Context(), path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.PutUser(context.Background(), testUser(fmt.Sprint("u", i))) }()
	}
	waitQueued(s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("write queued before Close: %v", err)
		}
	}
	if err := s.PutUser(t.Context(), testUser("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	s2 := openTestStore(t, path)
	if users, err := s2.ListUsers(t.Context()); err != nil || len(users) != n {
		t.Errorf("after reopening: %d users, error %v; want %d", len(users), err, n)
	}
}

func TestTxStoreUsedAfterItsTransaction(t *testing.T) {
	s := newTestStore(t)
	var kept domain.Store
	if err := s.InTx(t.Context(), func(tx domain.Store) error {
		kept = tx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := kept.PutUser(t.Context(), testUser("alice")); !errors.Is(err, errTxFinished) {
		t.Errorf("write through a finished transaction: %v", err)
	}
	if _, err := kept.GetUser(t.Context(), "alice"); !errors.Is(err, errTxFinished) {
		t.Errorf("read through a finished transaction: %v", err)
	}
}

// A failing nested InTx undoes its own writes only; the enclosing function decides the rest.
func TestNestedInTxFailureUndoesOnlyItsWrites(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if err := s.InTx(ctx, func(tx domain.Store) error {
		if err := tx.PutUser(ctx, testUser("outer")); err != nil {
			return err
		}
		err := tx.InTx(ctx, func(inner domain.Store) error {
			if err := inner.PutUser(ctx, testUser("inner")); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Errorf("nested InTx: %v, want boom", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "outer"); err != nil {
		t.Errorf("the outer write: %v", err)
	}
	if _, err := s.GetUser(ctx, "inner"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the failed nested write: %v, want not found", err)
	}
}

func TestForeignKeyViolationIsNotFound(t *testing.T) {
	s := newTestStore(t)
	err := s.CreateRequest(t.Context(), testRequest("req", "nobody"))
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("request for a missing user: %v, want ErrNotFound", err)
	}
	err = s.CreateDevice(t.Context(), domain.Device{ID: "d", Subject: "nobody"})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("device for a missing user: %v, want ErrNotFound", err)
	}
}

// A write that reaches the read pool by mistake fails instead of racing the writer.
func TestReadPoolIsReadOnly(t *testing.T) {
	s := newTestStore(t)
	if err := s.r.PutUser(t.Context(), testUser("alice")); err == nil {
		t.Error("a write on the read pool succeeded")
	}
}

// UpdateRequest returns what a later read returns, times included.
func TestUpdateReturnsStoredForm(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if err := s.PutUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, testRequest("req", "alice")); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 1, 2, 3, 5, 0, 123456789, time.FixedZone("X", 3600))
	got, err := s.UpdateRequest(ctx, "req", func(r *domain.Request) error {
		return r.Approve(now, domain.Receipt{DeviceID: "d", Decision: domain.DecisionApprove, DecidedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetRequest(ctx, "req")
	if err != nil {
		t.Fatal(err)
	}
	if got.DecidedAt != stored.DecidedAt || got.Receipt.DecidedAt != stored.Receipt.DecidedAt {
		t.Errorf("returned times %v, %v; stored %v, %v", got.DecidedAt, got.Receipt.DecidedAt, stored.DecidedAt, stored.Receipt.DecidedAt)
	}
}
