package tree

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// leafMap renders every set leaf of a version by path.
func leafMap(in *Inst) map[string]string {
	out := map[string]string{}
	_ = Match{In: in}.Leaves(nil, func(x *Inst, n *Node, v Value) error {
		out[Match{In: x, Node: n}.Path()] = v.String()
		return nil
	})
	return out
}

// TestVersionsIsolatedAndChangesExact replays random transactions
// (entries created, changed, replaced and deleted, leafrefs that hold or
// break, state writes, transactions that fail) and checks after each:
//   - a snapshot taken before it still reads exactly what it read then,
//     committed or not, while the writer moved on;
//   - a failed transaction left the tree as it was;
//   - its Changes, applied in order to the old leaves, give exactly the
//     new ones, and name no leaf whose value did not change (except an
//     entry deleted and created again, whose leaves are deleted, then set);
//   - its Undo, applied, gives back exactly the old leaves.
func TestVersionsIsolatedAndChangesExact(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			tr := New(testSchema(t))
			route := func() string {
				return fmt.Sprintf("/top/routes/route[prefix=10.0.%d.0/24][table=%d]", rng.IntN(40), 1+rng.IntN(2))
			}
			device := func() string { return fmt.Sprintf("sw%d", rng.IntN(4)) }
			type kept struct {
				snap   *Tree
				leaves map[string]string
			}
			var snaps []kept
			for step := range 400 {
				var ops []op
				state := rng.IntN(8) == 0
				for range 1 + rng.IntN(4) {
					r := route()
					switch k := rng.IntN(11); {
					case state:
						ops = append(ops, op{"update", r + "/state/status", strVal([]string{"installed", "withheld"}[rng.IntN(2)])})
					case k < 3:
						ops = append(ops, op{"update", r + "/config/metric", uintVal(uint64(rng.IntN(1100)))})
					case k < 4:
						ops = append(ops, op{"update", r + "/config", jsonVal(`{"device":"eth` + fmt.Sprint(rng.IntN(3)) + `","extra":["10.9.0.0/16"]}`)})
					case k < 5:
						ops = append(ops, op{"replace", r + "/config", jsonVal(`{"tags":"t` + fmt.Sprint(rng.IntN(3)) + `"}`)})
					case k < 6:
						ops = append(ops, op{"delete", r, nil})
					case k < 7:
						ops = append(ops, op{"delete", r + "/config/metric", nil})
					case k < 8:
						ops = append(ops, op{"update", r + "/config/dev-ref", strVal(device())})
					case k < 9:
						ops = append(ops, op{"update", "/top/devices/device[name=" + device() + "]/config/address", strVal("192.0.2." + fmt.Sprint(rng.IntN(9)))})
					case k < 10:
						ops = append(ops, op{"delete", "/top/devices/device[name=" + device() + "]", nil})
					default:
						ops = append(ops, op{"update", "/top/posture/config/level", uintVal(uint64(1 + rng.IntN(5)))})
					}
				}
				snap := tr.Snapshot()
				before := leafMap(snap.Root())
				snaps = append(snaps, kept{snap, before})
				tx, err := tr.Begin(state)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range ops {
					switch o.kind {
					case "update":
						err = tx.Update(p(t, o.path), o.val)
					case "replace":
						err = tx.Replace(p(t, o.path), o.val)
					case "delete":
						err = tx.Delete(p(t, o.path))
					}
					if err != nil {
						break
					}
				}
				if err == nil {
					err = tx.Validate()
				}
				if err != nil {
					tx.Rollback()
					if got := leafMap(tr.Root()); !sameLeaves(got, before) {
						t.Fatalf("step %d: a failed transaction (%v) changed the tree", step, err)
					}
					continue
				}
				changes := tx.Changes()
				undo := tx.Undo()
				tx.Commit()
				after := leafMap(tr.Root())
				checkChanges(t, step, before, after, changes)
				if !state {
					checkUndo(t, step, tr, undo, before, after)
				}
				if step%25 == 0 {
					for i, k := range snaps {
						if got := leafMap(k.snap.Root()); !sameLeaves(got, k.leaves) {
							t.Fatalf("step %d: the snapshot taken %d transactions ago changed", step, len(snaps)-i)
						}
					}
					snaps = snaps[:0]
				}
			}
		})
	}
}

func sameLeaves(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func checkChanges(t *testing.T, step int, before, after map[string]string, changes []Change) {
	t.Helper()
	got := map[string]string{}
	for k, v := range before {
		got[k] = v
	}
	deleted := map[string]bool{}
	for _, c := range changes {
		path := c.Path()
		if c.Op == OpDelete {
			if _, ok := got[path]; !ok {
				t.Fatalf("step %d: change deletes %s, which is not set", step, path)
			}
			delete(got, path)
			deleted[path] = true
			continue
		}
		if before[path] == after[path] && !deleted[path] {
			t.Fatalf("step %d: change sets %s to the value it had", step, path)
		}
		got[path] = c.Val.String()
	}
	if !sameLeaves(got, after) {
		var diff []string
		for k, v := range after {
			if got[k] != v {
				diff = append(diff, k+"="+v+" (changes give "+got[k]+")")
			}
		}
		for k := range got {
			if _, ok := after[k]; !ok {
				diff = append(diff, k+" left set")
			}
		}
		t.Fatalf("step %d: changes do not give the new tree:\n%s", step, strings.Join(diff, "\n"))
	}
}

func checkUndo(t *testing.T, step int, tr *Tree, undo []UndoOp, before, after map[string]string) {
	t.Helper()
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range undo {
		if u.Delete {
			err = tx.Delete(u.Elems)
		} else {
			err = tx.SetValue(u.Elems, u.Val)
		}
		if err != nil {
			t.Fatalf("step %d: apply undo %s: %v", step, RenderPath(u.Elems), err)
		}
	}
	if err := tx.Validate(); err != nil {
		t.Fatalf("step %d: undo does not validate: %v", step, err)
	}
	got := leafMap(tr.Root())
	tx.Rollback()
	// State leaves are not undone; compare config only.
	cfg := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if !strings.Contains(k, "/state/") {
				out[k] = v
			}
		}
		return out
	}
	if !sameLeaves(cfg(got), cfg(before)) {
		t.Fatalf("step %d: undo gives\n%v\nwant\n%v", step, cfg(got), cfg(before))
	}
	if !sameLeaves(leafMap(tr.Root()), after) {
		t.Fatalf("step %d: rolling the undo back did not restore the tree", step)
	}
}
