package tree

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestFillEmptyIsGetOrAdd: fillEmpty makes the trie adding the same
// entries one by one with getOrAdd makes (node for node: bitmaps, keys
// in order, instances, owners), for the real hash and hashes that put
// every key at one root position, that collide in all 64 bits, or that
// differ only in the last level; sizes from none to thousands, split
// unevenly between the parts. Two entries with one key, in one part or
// in both, make it report false and leave the list empty.
func TestFillEmptyIsGetOrAdd(t *testing.T) {
	real := keyHash
	hashes := map[string]func(string) uint64{
		"real":     real,
		"one root": func(k string) uint64 { return real(k) &^ hashMask },
		"collide":  func(k string) uint64 { return uint64(len(k)%4)<<60 | uint64(k[len(k)-1]%4) },
		"deep":     func(k string) uint64 { return uint64(k[len(k)-1]) << 58 },
	}
	const owner = 7
	for name, h := range hashes {
		t.Run(name, func(t *testing.T) {
			defer func(old func(string) uint64) { keyHash = old }(keyHash)
			keyHash = h
			rng := rand.New(rand.NewPCG(3, 17))
			for _, n := range []int{0, 1, 2, 3, 33, 100, 1000, 5000} {
				var parts [2][]keyedInst
				cut := rng.IntN(n + 1)
				for i := range n {
					x := keyedInst{fmt.Sprintf("10.%d.%d/32", i/250, i%250), &Inst{}}
					parts[min(1, i/max(cut, 1))] = append(parts[min(1, i/max(cut, 1))], x)
				}
				if cut == 0 {
					parts[0], parts[1] = nil, append(parts[0], parts[1]...)
				}
				var want entries
				for _, p := range parts {
					for _, x := range p {
						_, slot := want.getOrAdd(owner, x.k)
						*slot = x.e
					}
				}
				var got entries
				if !got.fillEmpty(owner, parts) {
					t.Fatalf("%d entries: refused", n)
				}
				if got.n != want.n {
					t.Fatalf("%d entries: n %d, want %d", n, got.n, want.n)
				}
				if d := sameTrie(got.root, want.root, "root"); d != "" {
					t.Fatalf("%d entries (%d in the first part): %s", n, cut, d)
				}
				if n < 2 {
					continue
				}
				// A key given twice, within a part and across the parts.
				for _, dup := range [][2]int{{0, n - 1}, {n - 2, n - 1}} {
					all := append(append([]keyedInst(nil), parts[0]...), parts[1]...)
					all[dup[1]].k = all[dup[0]].k
					var two [2][]keyedInst
					two[0], two[1] = all[:len(parts[0])], all[len(parts[0]):]
					var m entries
					if m.fillEmpty(owner, two) || m.root != nil || m.n != 0 {
						t.Fatalf("%d entries, entry %d given again as %d: filled (%d entries)", n, dup[0], dup[1], m.n)
					}
				}
			}
		})
	}
}

// sameTrie describes the first difference between two tries, or "".
func sameTrie(a, b *hnode, at string) string {
	if a == nil || b == nil {
		if (a == nil) != (b == nil) && !(a == nil && b.empty() || b == nil && a.empty()) {
			return fmt.Sprintf("%s: %v against %v", at, a, b)
		}
		return ""
	}
	if a.owner != b.owner || a.datamap != b.datamap || a.nodemap != b.nodemap || len(a.ents) != len(b.ents) || len(a.kids) != len(b.kids) {
		return fmt.Sprintf("%s: owner %d/%d datamap %x/%x nodemap %x/%x, %d/%d entries, %d/%d children",
			at, a.owner, b.owner, a.datamap, b.datamap, a.nodemap, b.nodemap, len(a.ents), len(b.ents), len(a.kids), len(b.kids))
	}
	for i := range a.ents {
		if a.ents[i] != b.ents[i] {
			return fmt.Sprintf("%s: entry %d is %s, want %s", at, i, a.ents[i].key, b.ents[i].key)
		}
	}
	for i := range a.kids {
		if d := sameTrie(a.kids[i], b.kids[i], fmt.Sprintf("%s/%d", at, i)); d != "" {
			return d
		}
	}
	return ""
}
