package tree

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// version is one committed state of a list under test and what it must
// hold.
type version struct {
	m    entries
	want map[string]*Inst
}

// TestEntriesPersistent replays random sets, getOrAdds, refs and deletes, grouped into
// transactions, and checks after every operation that the list holds
// exactly what a Go map holds; at the end every version kept along the
// way must still hold what it held then (no transaction wrote a node
// another version can see). It runs with
// the real hash and with hashes that collide on purpose, so that deep
// chains and collision nodes (all 64 bits equal) are exercised.
func TestEntriesPersistent(t *testing.T) {
	hashes := map[string]func(string) uint64{
		"real": keyHash,
		// 16 distinct hashes: most keys share all 64 bits.
		"collide": func(k string) uint64 { return uint64(len(k)%4)<<60 | uint64(k[len(k)-1]%4) },
		// equal low bits, differing only in the last level
		"deep": func(k string) uint64 { return uint64(k[len(k)-1]) << 58 },
	}
	for name, h := range hashes {
		t.Run(name, func(t *testing.T) {
			defer func(old func(string) uint64) { keyHash = old }(keyHash)
			keyHash = h
			for seed := range uint64(4) {
				checkEntries(t, rand.New(rand.NewPCG(seed, 11)))
			}
		})
	}
}

func checkEntries(t *testing.T, rng *rand.Rand) {
	t.Helper()
	var m entries
	want := map[string]*Inst{}
	var versions []version
	owner := uint64(1)
	for step := range 3000 {
		k := fmt.Sprintf("k%d", rng.IntN(300))
		switch rng.IntN(5) {
		case 4:
			// ref finds what is there and replaces it in place.
			slot := m.ref(owner, k)
			w, had := want[k]
			if (slot != nil) != had || slot != nil && *slot != w {
				t.Fatalf("step %d: ref %s found %v, key present %v", step, k, slot != nil, had)
			}
			if slot != nil {
				in := &Inst{}
				*slot = in
				want[k] = in
			}
		case 0:
			_, had := want[k]
			if got := m.del(owner, k); got != had {
				t.Fatalf("step %d: del %s reported %v, key present %v", step, k, got, had)
			}
			delete(want, k)
		case 1:
			// getOrAdd finds what is there, else adds where told.
			got, slot := m.getOrAdd(owner, k)
			if w, had := want[k]; had {
				if got != w || slot != nil {
					t.Fatalf("step %d: getOrAdd %s = %p, %v; want %p and no slot", step, k, got, slot != nil, w)
				}
				break
			}
			if got != nil || slot == nil {
				t.Fatalf("step %d: getOrAdd %s of an absent key = %p, %v; want a slot", step, k, got, slot != nil)
			}
			in := &Inst{}
			*slot = in
			want[k] = in
		default:
			in := &Inst{}
			m.set(owner, k, in)
			want[k] = in
		}
		if m.n != len(want) {
			t.Fatalf("step %d: n = %d, want %d", step, m.n, len(want))
		}
		if got := m.get(k); got != want[k] {
			t.Fatalf("step %d: get %s = %p, want %p", step, k, got, want[k])
		}
		if rng.IntN(40) == 0 {
			// The transaction commits: its nodes are never written again.
			versions = append(versions, version{m: m, want: maps.Clone(want)})
			owner++
		}
	}
	versions = append(versions, version{m: m, want: maps.Clone(want)})
	for i, v := range versions {
		got := map[string]*Inst{}
		v.m.each(func(k string, in *Inst) bool {
			if _, dup := got[k]; dup {
				t.Fatalf("version %d: key %s twice", i, k)
			}
			got[k] = in
			return true
		})
		if !maps.Equal(got, v.want) || v.m.n != len(v.want) {
			t.Fatalf("version %d holds %d entries (n %d), want %d", i, len(got), v.m.n, len(v.want))
		}
		for k, in := range v.want {
			if v.m.get(k) != in {
				t.Fatalf("version %d: get %s", i, k)
			}
		}
	}
}

// TestEntriesCanonical: the same keys give the same shape whatever the
// order of inserts and deletes, so a list emptied again holds no nodes.
func TestEntriesCanonical(t *testing.T) {
	var a, b entries
	ins := make([]*Inst, 500)
	for i := range ins {
		ins[i] = &Inst{}
		a.set(1, fmt.Sprint(i), ins[i])
	}
	for i := len(ins) - 1; i >= 0; i-- {
		b.set(2, fmt.Sprint(i+1000), &Inst{})
		b.set(2, fmt.Sprint(i), ins[i])
	}
	for i := range ins {
		b.del(3, fmt.Sprint(i+1000))
	}
	if !sameShape(a.root, b.root) {
		t.Fatal("equal key sets built in different orders have different shapes")
	}
	for i := range ins {
		a.del(4, fmt.Sprint(i))
	}
	if a.n != 0 || !a.root.empty() {
		t.Fatalf("emptied list keeps %d entries, root %+v", a.n, a.root)
	}
}

func sameShape(a, b *hnode) bool {
	if a.datamap != b.datamap || a.nodemap != b.nodemap || len(a.ents) != len(b.ents) || len(a.kids) != len(b.kids) {
		return false
	}
	for i := range a.ents {
		if a.ents[i] != b.ents[i] {
			return false
		}
	}
	for i := range a.kids {
		if !sameShape(a.kids[i], b.kids[i]) {
			return false
		}
	}
	return true
}
