package underlay

import "sync"

// mailbox is an unbounded FIFO between goroutines: Put never blocks, so
// the component and its device managers can send to each other without
// either waiting on the other.
type mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{} // holds one token while items is not empty
}

func newMailbox[T any]() *mailbox[T] { return &mailbox[T]{notify: make(chan struct{}, 1)} }

// Put appends v.
func (m *mailbox[T]) Put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// Ready is readable when items may be waiting.
func (m *mailbox[T]) Ready() <-chan struct{} { return m.notify }

// Take returns everything waiting, oldest first.
func (m *mailbox[T]) Take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.items
	m.items = nil
	return out
}
