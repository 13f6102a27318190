package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// The store satisfies KeyStore, and the fake is a domain.Keys.
var (
	_ KeyStore    = domain.Store(nil)
	_ domain.Keys = (*memKeys)(nil)
)

// memKeys is an in-memory domain.Keys: a list of keys behind a mutex. It returns copies.
type memKeys struct {
	mu    sync.Mutex
	keys  []domain.SigningKey
	lists atomic.Int64 // number of ListKeys calls
	// failList, when set, makes ListKeys fail.
	failList atomic.Bool
	// onList, when set, runs at the start of every ListKeys (outside the mutex).
	onList func()
}

func (s *memKeys) ListKeys(ctx context.Context) ([]domain.SigningKey, error) {
	s.lists.Add(1)
	if s.onList != nil {
		s.onList()
	}
	if s.failList.Load() {
		return nil, errors.New("store unavailable")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]domain.SigningKey, len(s.keys))
	for i, k := range s.keys {
		k.PrivateKey = slices.Clone(k.PrivateKey)
		out[i] = k
	}
	return out, nil
}

func (s *memKeys) PutKey(ctx context.Context, k domain.SigningKey) error {
	k.PrivateKey = slices.Clone(k.PrivateKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].ID == k.ID {
			s.keys[i] = k
			return nil
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// get returns the stored key with ID id.
func (s *memKeys) get(t *testing.T, id string) domain.SigningKey {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("no stored key %q", id)
	return domain.SigningKey{}
}

// byStatus returns the IDs of the stored keys of alg with status st, oldest first.
func (s *memKeys) byStatus(alg string, st domain.KeyStatus) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, k := range s.keys {
		if k.Algorithm == alg && k.Status == st {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

func (s *memKeys) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testRSAKeys is a pool of RSA keys, each generated the first time it is needed, handed out in turn:
// RSA generation is too slow to do for every key a test makes.
var testRSAKeys struct {
	next atomic.Uint64
	once [6]sync.Once
	keys [6]*rsa.PrivateKey
}

// testGenerate is Options.Generate for tests: fresh P-256 keys, RSA keys from the pool.
func testGenerate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256, PS256:
		i := testRSAKeys.next.Add(1) % uint64(len(testRSAKeys.keys))
		var err error
		testRSAKeys.once[i].Do(func() { testRSAKeys.keys[i], err = rsa.GenerateKey(rand.Reader, 2048) })
		if err != nil {
			return nil, err
		}
		return testRSAKeys.keys[i], nil
	}
	return generateKey(alg)
}

// fixture is a keyring over an in-memory store and a fake clock.
type fixture struct {
	store *memKeys
	clock *fakeClock
	opts  Options
	kr    *Keyring
}

// allAlgs are the algorithms the tests keep keys for.
var allAlgs = []string{ES256, RS256, PS256}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		store: &memKeys{},
		clock: newFakeClock(),
		opts: Options{
			Algorithms:       allAlgs,
			ReloadEvery:      30 * time.Second,
			RetiredRetention: time.Hour,
			Generate:         testGenerate,
		},
	}
	f.kr = NewKeyring(f.store, f.clock, f.opts)
	if err := f.kr.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return f
}

// otherProcess returns a second keyring on the same store and clock, as another process would have.
func (f *fixture) otherProcess(t *testing.T) *Keyring {
	t.Helper()
	kr := NewKeyring(f.store, f.clock, f.opts)
	if err := kr.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return kr
}

// activeKid returns the ID of the only active key of alg in the store.
func (f *fixture) activeKid(t *testing.T, alg string) string {
	t.Helper()
	ids := f.store.byStatus(alg, domain.KeyActive)
	if len(ids) != 1 {
		t.Fatalf("%s: want 1 active key, got %v", alg, ids)
	}
	return ids[0]
}

// nextKid returns the ID of the only next key of alg in the store.
func (f *fixture) nextKid(t *testing.T, alg string) string {
	t.Helper()
	ids := f.store.byStatus(alg, domain.KeyNext)
	if len(ids) != 1 {
		t.Fatalf("%s: want 1 next key, got %v", alg, ids)
	}
	return ids[0]
}
