package tree

import "runtime"

// A bulk Set's 100,000 routes are merged into a list that is empty
// before it: half the time from the handler's start to the commit's
// publication, on one core. Each new entry is built from its own JSON
// object alone (its keys, its instances, its leaves), so bulkMerge
// builds the first half of the entries on one core and the second half
// on the other, each in a part transaction of its own (its own record of
// the instances it made, its own memos and merge plans), and then adds
// them to the list in document order. The entries come out as merging
// them one by one makes them, in the same order in the transaction's
// record, so the changes and the log record are the same. Anything else
// (an entry in error, two entries with one key) leaves the transaction
// untouched, and mergeList merges entry by entry, which reports what it
// always did.

// splitMergeMin is how many entries a JSON array must hold for
// bulkMerge to build them on both cores; a variable so that tests merge
// small arrays both ways.
var splitMergeMin = 4096

// keyedInst is a new list entry with its key string.
type keyedInst struct {
	k string
	e *Inst
}

// bulkMerge merges arr, the JSON entries of list n under in, when the
// list is empty and the transaction may create its entries, building
// them on both cores; it reports whether it did. When it did not, the
// transaction is as it was.
func (tx *Txn) bulkMerge(in *Inst, n *Node, arr []any, replace bool) bool {
	if tx.part || len(arr) < splitMergeMin || runtime.GOMAXPROCS(0) < 2 || !tx.mayCreate(n) {
		return false
	}
	l := &in.lists()[n.slot]
	if l.n != 0 {
		return false
	}
	half := len(arr) / 2
	parts := [2]*Txn{tx.partTxn(), tx.partTxn()}
	var made [2][]keyedInst
	done := make(chan struct{})
	go func() {
		defer close(done)
		made[1] = parts[1].newEntries(in, n, arr[half:], replace)
	}()
	made[0] = parts[0].newEntries(in, n, arr[:half], replace)
	<-done
	if made[0] == nil || made[1] == nil {
		return false
	}
	empty := *l
	for _, m := range made {
		for _, x := range m {
			_, slot := l.getOrAdd(tx.id, x.k)
			if slot == nil { // two entries with one key
				*l = empty // it held no nodes: the ones added are dropped
				return false
			}
			*slot = x.e
		}
	}
	tx.dirty()
	tx.reserveTouched(len(parts[0].touched) + len(parts[1].touched))
	for _, p := range parts {
		tx.touched = append(tx.touched, p.touched...)
		tx.writes += p.writes
	}
	return true
}

// partTxn returns a part transaction of tx for bulkMerge: it writes new
// instances as tx does, into a record, memos and plans of its own.
func (tx *Txn) partTxn() *Txn {
	return &Txn{
		t: tx.t, id: tx.id, state: tx.state, OperationalEntries: tx.OperationalEntries, base: tx.base,
		part: true, memos: new([memoSlots]leafMemo), plans: map[*Node]*mergePlan{},
	}
}

// newEntries builds the new entries of list n under in from arr, as
// mergeList would add them to an empty list, without adding them; nil
// when one is in error.
func (tx *Txn) newEntries(in *Inst, n *Node, arr []any, replace bool) []keyedInst {
	keys := make([]Value, len(n.Keys))
	out := make([]keyedInst, 0, len(arr))
	tx.reserveTouched(2 * len(arr))
	for _, a := range arr {
		obj, ok := a.(*jsonObject)
		if !ok || tx.entryKeys(n, obj, keys) != nil {
			return nil
		}
		k := keyString(keys)
		e := tx.made(newEntry(n, in.id, tx.id))
		tx.fillKeys(e, keys)
		if tx.merge(e, obj, replace, keys) != nil {
			return nil
		}
		out = append(out, keyedInst{k, e})
	}
	return out
}
