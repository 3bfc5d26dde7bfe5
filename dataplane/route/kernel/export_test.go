package kernel

// LinksRead is how many times b listed the namespace's links, for tests
// that show a Patch resolves devices from the events, not a fresh list.
func LinksRead(b *Backend) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.linksRead
}

// OnExchange makes f run after each exchange of adds, before b looks for
// changes made by someone else during it.
func OnExchange(b *Backend, f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exchanged = f
}
