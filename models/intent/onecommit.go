package intent

// A change read in parts that is one commit's (a bulk Set's, the case
// that matters) needs no set of dirty entries. The set is there to count
// an entry two commits changed once, and to read again one a later
// commit changed after it was read; a commit lists each instance's
// changes together (tree.Txn.Changes), so absorb, which skips an entry
// that the change before already marked, meets each of its entries once.
// The queue alone then holds the entries not read yet, in order: one map
// insert and one delete fewer an entry (about a tenth of the reading of
// a 100,000-route Set in BenchmarkObserveBulk). And when the cache held
// no route entry before that commit (the bulk Set into an empty table)
// none of the change's entries has an old cache entry to look up: one
// probe fewer, though the entry's insert then pays most of its cache
// miss.
//
// oneCommit and allNew say so for the change being read in parts.

// beginParts is when a change starts being read in parts: its entries
// marked so far become the queue.
func (c *RouteCache) beginParts() {
	c.oneCommit = len(c.dirty) == 0 && len(c.marked) == 0 && len(c.pend) == 1 && !c.noOneCommit
	c.allNew = c.oneCommit && len(c.byEntry) == 0
	c.queue, c.marked, c.parted = c.marked, nil, true
}

// unread is how many entries marked dirty are not read yet.
func (c *RouteCache) unread() int {
	if c.oneCommit {
		return len(c.queue)
	}
	return len(c.dirty)
}

// leaveOneCommit makes the entries still to be marked go to the set of
// dirty ones again, for a reader of that set (Routes). The queue holds
// none between two parts (each part reads every entry it marked), so the
// entries not read are all still to be marked.
func (c *RouteCache) leaveOneCommit() {
	c.oneCommit, c.allNew = false, false
}
