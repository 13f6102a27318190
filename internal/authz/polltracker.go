package authz

import (
	"hash/maphash"
	"sync"
	"time"
)

// pollTracker remembers when each pending request was last polled, in memory, so that a pending
// poll never writes to the database. Only a slow_down (which changes the interval for all later
// polls) is persisted. With several replicas each keeps its own view; a client spreading polls
// across replicas can poll at most once per interval per replica.
type pollTracker struct {
	seed   maphash.Seed
	shards [32]pollShard
}

type pollShard struct {
	mu    sync.Mutex
	polls map[string]pollState
}

type pollState struct {
	last      time.Time
	interval  time.Duration
	expiresAt time.Time
}

func newPollTracker() *pollTracker {
	t := &pollTracker{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].polls = map[string]pollState{}
	}
	return t
}

func (t *pollTracker) shard(id string) *pollShard {
	return &t.shards[maphash.String(t.seed, id)%uint64(len(t.shards))]
}

// poll records a poll at now. A poll sooner than the current interval after the previous one is too
// soon: the interval grows by step for this and every later poll (CIBA section 11), and the new
// interval is returned. The first poll of a request is never too soon. The interval lives only here,
// so a client polling in a tight loop costs no database writes.
func (t *pollTracker) poll(id string, now, expiresAt time.Time, base, step time.Duration) (tooSoon bool, interval time.Duration) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, seen := s.polls[id]
	interval = base
	if seen {
		interval = prev.interval
	}
	tooSoon = seen && now.Sub(prev.last) < interval
	if tooSoon {
		interval += step
	}
	s.polls[id] = pollState{last: now, interval: interval, expiresAt: expiresAt}
	return tooSoon, interval
}

// touch records that a poll was answered at now (a long poll ends later than it began).
func (t *pollTracker) touch(id string, now time.Time) {
	s := t.shard(id)
	s.mu.Lock()
	if st, ok := s.polls[id]; ok {
		st.last = now
		s.polls[id] = st
	}
	s.mu.Unlock()
}

func (t *pollTracker) forget(id string) {
	s := t.shard(id)
	s.mu.Lock()
	delete(s.polls, id)
	s.mu.Unlock()
}

// sweep drops entries of requests that have expired, so the map does not grow without bound.
func (t *pollTracker) sweep(now time.Time) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for id, st := range s.polls {
			if !now.Before(st.expiresAt) {
				delete(s.polls, id)
			}
		}
		s.mu.Unlock()
	}
}
