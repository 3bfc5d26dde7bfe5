package tree

import (
	"runtime"
	"slices"
)

// A bulk Set's 100,000 routes are merged into a list that is empty
// before it: half the time from the handler's start to the commit's
// publication, on one core. Each new entry is built from its own JSON
// object alone (its keys, its instances, its leaves), so bulkMerge
// builds the first half of the entries on one core and the second half
// on the other, each in a part transaction of its own (its own record of
// the instances it made, its own memos and merge plans), and then adds
// them to the list as adding them in document order would (see
// fillEmpty). The entries come out as merging
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
	// The parts record the instances they make in the transaction's
	// own array, each in a region with room for touchesGuess an entry
	// and slack, the second's moved down behind the first's once
	// they are done; a part that outgrows its region grows its own.
	slack := len(arr)/32 + 16
	at := len(tx.touched)
	tx.reserveTouched(touchesGuess*len(arr) + 2*slack)
	buf := tx.touched[:cap(tx.touched)]
	start := at + touchesGuess*half + slack
	parts[0].touched = buf[at:at:start]
	parts[1].touched = buf[start:start]
	var made [2][]keyedInst
	done := make(chan struct{})
	go func() {
		defer close(done)
		made[1] = parts[1].newEntries(in, n, arr[half:], replace)
	}()
	made[0] = parts[0].newEntries(in, n, arr[:half], replace)
	<-done
	if made[0] == nil || made[1] == nil {
		clear(buf[at:]) // keeps none of the parts' instances alive
		return false
	}
	if !l.fillEmpty(tx.id, made) { // two entries with one key
		clear(buf[at:])
		return false
	}
	tx.dirty()
	first, second := parts[0].touched, parts[1].touched
	if inRegion(first, buf, at) && inRegion(second, buf, start) {
		tx.touched = buf[:at+len(first)+len(second)]
		copy(tx.touched[at+len(first):], second) // down, within buf
		clear(buf[len(tx.touched):])
	} else {
		second = slices.Clone(second) // first may grow over its region
		tx.touched = append(append(tx.touched, first...), second...)
		if &tx.touched[:1][0] == &buf[0] {
			clear(buf[len(tx.touched):])
		}
	}
	tx.writes += parts[0].writes + parts[1].writes
	return true
}

// touchesGuess is how many instances bulkMerge guesses a new entry
// makes (a route: itself and its config container); a variable so that
// tests make the parts outgrow their regions.
var touchesGuess = 2

// inRegion reports whether part, a part's record that started empty at
// buf[start], is still in buf.
func inRegion(part, buf []touch, start int) bool {
	return cap(part) > 0 && start < len(buf) && &part[:1][0] == &buf[start]
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
