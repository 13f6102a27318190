package resource

import (
	"context"
	"sync"
	"time"
)

// ReplayStore remembers which tokens were used. Implementations shared by several API replicas
// (Redis SET NX with an expiry, a database table with a unique key) make the guard hold across
// them.
type ReplayStore interface {
	// Use records jti as used until the given time and reports whether this was its first use.
	// It must be atomic: of two concurrent calls with the same jti, one gets true.
	Use(ctx context.Context, jti string, until time.Time) (first bool, err error)
}

// MemoryReplayStore is a ReplayStore for one process. Entries are dropped once their time has
// passed, so memory holds only tokens that could still be presented.
type MemoryReplayStore struct {
	mu        sync.Mutex
	seen      map[string]time.Time
	lastSweep time.Time
	now       func() time.Time
}

// NewMemoryReplayStore returns an empty store.
func NewMemoryReplayStore() *MemoryReplayStore {
	return &MemoryReplayStore{seen: map[string]time.Time{}, now: time.Now}
}

// sweepEvery is how often Use drops expired entries; between sweeps a stale entry is only
// checked, never trusted.
const sweepEvery = time.Minute

// Use implements ReplayStore.
func (s *MemoryReplayStore) Use(_ context.Context, jti string, until time.Time) (bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > sweepEvery {
		s.lastSweep = now
		for k, exp := range s.seen {
			if !now.Before(exp) {
				delete(s.seen, k)
			}
		}
	}
	if exp, ok := s.seen[jti]; ok && now.Before(exp) {
		return false, nil
	}
	s.seen[jti] = until
	return true, nil
}

// Len returns how many tokens the store remembers (for tests and metrics).
func (s *MemoryReplayStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
