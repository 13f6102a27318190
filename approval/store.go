package approval

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/countersign/countersign/client"
)

// Record is what a tool-call ID has reached: a pending request, a token, or a denial.
type Record struct {
	// Pending is the serialized client.Pending while the user has not decided.
	Pending json.RawMessage `json:"pending,omitempty"`
	// Token is the approval's token once obtained.
	Token *client.Token `json:"token,omitempty"`
	// Denied records that the user said no.
	Denied bool `json:"denied,omitempty"`
	// Until is when the record stops mattering (the request's or token's expiry, the end of the
	// denial's memory); a store may drop it after.
	Until time.Time `json:"until"`
}

// Store keeps a Record per tool-call ID. Records hold access tokens and auth_req_ids: keep them
// as you keep credentials. A store shared by several processes makes retries idempotent across
// them; two processes handling the very same call ID at the very same moment may still both ask,
// as Get and Set are not one atomic step.
type Store interface {
	// Get returns the call ID's record, and whether there is one.
	Get(ctx context.Context, callID string) (Record, bool, error)
	// Set stores the call ID's record, replacing any.
	Set(ctx context.Context, callID string, r Record) error
	// Delete forgets the call ID.
	Delete(ctx context.Context, callID string) error
}

// MemoryStore is a Store for one process. Records are dropped once their Until has passed.
type MemoryStore struct {
	mu        sync.Mutex
	records   map[string]Record
	lastSweep time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{records: map[string]Record{}} }

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, callID string) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[callID]
	if ok && !r.Until.IsZero() && !time.Now().Before(r.Until) {
		delete(s.records, callID)
		return Record{}, false, nil
	}
	return r, ok, nil
}

// Set implements Store.
func (s *MemoryStore) Set(_ context.Context, callID string, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.lastSweep) > time.Minute {
		s.lastSweep = now
		for k, old := range s.records {
			if !old.Until.IsZero() && !now.Before(old.Until) {
				delete(s.records, k)
			}
		}
	}
	s.records[callID] = r
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, callID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, callID)
	return nil
}
