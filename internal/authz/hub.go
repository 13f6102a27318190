package authz

import "sync"

// Hub wakes goroutines waiting for a request to change (a long poll at the token endpoint). It is
// in-process; with several replicas, a backend that can broadcast (PostgreSQL LISTEN/NOTIFY) feeds
// Notify from the other replicas.
type Hub struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{waiters: map[string][]chan struct{}{}} }

// Subscribe returns a channel closed at the next Notify for the request, and a function that
// unsubscribes (call it when done waiting).
func (h *Hub) Subscribe(requestID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.waiters[requestID] = append(h.waiters[requestID], ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		list := h.waiters[requestID]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(h.waiters, requestID)
		} else {
			h.waiters[requestID] = list
		}
	}
}

// Waiting returns how many goroutines are waiting, for metrics and tests.
func (h *Hub) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.waiters {
		n += len(l)
	}
	return n
}

// Notify wakes every waiter of the request.
func (h *Hub) Notify(requestID string) {
	h.mu.Lock()
	list := h.waiters[requestID]
	delete(h.waiters, requestID)
	h.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}
