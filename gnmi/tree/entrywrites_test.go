package tree

import (
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Writes taken from EntryWrites are zeroed and the taker's own: appending
// to one never writes into the next, and a take bigger than a chunk gets
// a slice of its own.
func TestEntryWritesTake(t *testing.T) {
	var w EntryWrites
	a := w.Take(3)
	b := w.Take(2)
	if len(a) != 3 || cap(a) != 3 || len(b) != 2 {
		t.Fatalf("took len %d cap %d and len %d, want 3 (cap 3) and 2", len(a), cap(a), len(b))
	}
	v := &gpb.TypedValue{}
	a = append(a, EntryWrite{Val: v})
	if b[0].Val != nil {
		t.Fatal("appending to one take wrote into the next")
	}
	b[0].Delete = true
	for _, x := range w.Take(entryWriteChunk - 5) {
		if x.Delete || x.Val != nil || x.Path != nil {
			t.Fatal("a take is not zeroed")
		}
	}
	if big := w.Take(entryWriteChunk + 1); len(big) != entryWriteChunk+1 {
		t.Fatalf("a take past a chunk has len %d", len(big))
	}
	_ = a
}
