package authz

import (
	"context"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// clientCacheTTL is how long a client read from the store is reused. Clients change only when an
// operator edits the config and restarts a server, so a few seconds of staleness on other replicas is
// harmless, and it saves one database read on every poll.
const clientCacheTTL = 10 * time.Second

// clientCache keeps recently used clients. Unknown IDs are not cached, so random client_ids cannot
// grow it; it holds at most the registered clients.
type clientCache struct {
	mu      sync.RWMutex
	entries map[string]cachedClient
}

type cachedClient struct {
	client  domain.Client
	fetched time.Time
}

// getClient returns a client, from the cache while it is fresh.
func (s *Service) getClient(ctx context.Context, id string) (domain.Client, error) {
	now := s.clock.Now()
	s.clients.mu.RLock()
	e, ok := s.clients.entries[id]
	s.clients.mu.RUnlock()
	if ok && now.Sub(e.fetched) < clientCacheTTL && !now.Before(e.fetched) {
		return e.client, nil
	}
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return c, err
	}
	s.clients.mu.Lock()
	if s.clients.entries == nil {
		s.clients.entries = map[string]cachedClient{}
	}
	s.clients.entries[id] = cachedClient{client: c, fetched: now}
	s.clients.mu.Unlock()
	return c, nil
}
