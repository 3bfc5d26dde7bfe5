package tree

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestEntryFinderIsEntry compares EntryFinder.Find with Inst.Entry and an
// identity check, and FindAll with Find, over versions of a tree whose entries random commits
// create, delete and create again (a new identity under the same keys),
// for identities from every version, with the real hash and with one
// that makes most keys collide.
func TestEntryFinderIsEntry(t *testing.T) {
	hashes := map[string]func(string) uint64{
		"real":    keyHash,
		"collide": func(k string) uint64 { return uint64(len(k) % 3) },
	}
	for name, h := range hashes {
		t.Run(name, func(t *testing.T) {
			defer func(old func(string) uint64) { keyHash = old }(keyHash)
			keyHash = h
			rng := rand.New(rand.NewPCG(17, uint64(len(name))))
			tr := New(testSchema(t))
			var versions []*Tree
			var idents []Ident
			for range 40 {
				var ops []op
				for range 1 + rng.IntN(6) {
					route := fmt.Sprintf("/top/routes/route[prefix=10.0.%d.0/24][table=%d]", rng.IntN(6), 1+rng.IntN(3))
					dev := fmt.Sprintf("/top/devices/device[name=d%d]", rng.IntN(5))
					switch rng.IntN(4) {
					case 0:
						ops = append(ops, op{"delete", route, nil})
					case 1:
						ops = append(ops, op{"delete", dev, nil})
					case 2:
						ops = append(ops, op{"update", dev + "/config/address", strVal(fmt.Sprint("a", rng.IntN(9)))})
					default:
						ops = append(ops, op{"update", route + "/config/metric", uintVal(uint64(rng.IntN(100)))})
					}
				}
				if _, err := apply(t, tr, false, ops...); err != nil {
					continue // a delete of nothing, or a device without its name
				}
				v := tr.Snapshot()
				versions = append(versions, v)
				for _, list := range []*Inst{lists(v, "routes"), lists(v, "devices")} {
					if list != nil {
						list.lists()[0].each(func(_ string, e *Inst) bool {
							idents = append(idents, e.Ident())
							return true
						})
					}
				}
			}
			var f EntryFinder
			found := 0
			all := make([]*Inst, len(idents))
			for _, v := range versions {
				for _, parent := range []*Inst{lists(v, "routes"), lists(v, "devices")} {
					if parent == nil {
						continue
					}
					// FindAll of a random selection, some twice.
					var xs []Ident
					for range rng.IntN(len(idents) + 1) {
						xs = append(xs, idents[rng.IntN(len(idents))])
					}
					f.FindAll(parent, xs, all)
					for i, x := range xs {
						if got, want := all[i], f.Find(parent, x); got != want {
							t.Fatalf("FindAll: %s in %s is %p, Find says %p", x.PathString(), parent.PathString(), got, want)
						}
					}
					for _, x := range idents {
						want := parent.Entry(x.Schema(), x.Keys()...)
						if want != nil && want.Ident() != x {
							want = nil
						}
						if got := f.Find(parent, x); got != want {
							t.Fatalf("Find(%s) in %s = %p, Entry says %p", x.PathString(), parent.PathString(), got, want)
						}
						if want != nil {
							found++
						}
					}
				}
			}
			if found == 0 || len(idents) == 0 {
				t.Fatalf("found %d of %d identities: the test compares nothing", found, len(idents))
			}
		})
	}
}

// lists returns /top/<name> in v (nil when absent).
func lists(v *Tree, name string) *Inst {
	top := v.Root().Sub("top")
	if top == nil {
		return nil
	}
	return top.Sub(name)
}
