package posture

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/bpfmaptest"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/shmtest"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgmeshtest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// converged reports whether every step's last apply is the accord of level
// and the engine published it.
func converged(st *store.Store, rs []*recStep, level uint8) bool {
	want, _ := accord.Default(level)
	if effectiveLevel(st) != level {
		return false
	}
	for _, r := range rs {
		if r.stage == StageForensic {
			continue // runs only on the way into level 1
		}
		if !r.last().Equal(want) {
			return false
		}
	}
	return true
}

// TestRandomSequencesConverge drives config and BPF-map levels in random
// order over the backends' own recording fakes (shm, bpfmap, wgmesh,
// route; handshake and notary are recording steps until they exist):
// whatever the interleaving, every backend ends in the state the accord of
// the final effective level prescribes for the tree.
func TestRandomSequencesConverge(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*7))
			st := openStore(t)
			fillTree(t, st, 20, 120)
			shmW, bpf := &shmtest.Writer{}, &bpfmaptest.Backend{}
			meshFake, routeFake := wgmeshtest.New(), routetest.New()
			key, _ := wgmesh.GenerateKey()
			base := wgmesh.Config{Interface: "kedge0", PrivateKey: key}
			meshIntent := func(tr *tree.Tree, a accord.Accord) (wgmesh.Config, error) { return intent.Mesh(tr, a, base), nil }
			rs := []*recStep{{name: "handshake", stage: StageHandshake}, {name: "notary", stage: StageNotary}}
			steps := append(asSteps(rs), ShmStep(shmW), BPFMapStep(bpf, bpfmap.Config{}),
				IntentStep("mesh", StageMesh, st, meshIntent, meshFake),
				IntentStep("routes", StageRoutes, st, intent.RouteConfig, Setter[route.Config](routeFake)))
			e, _ := start(t, st, Options{Steps: steps, LevelSource: bpf})

			var cfg, ext uint8 = 5, 0
			var lastCommit uint64
			expect := func() uint8 { l, _ := Effective(cfg, ext); return l }
			settled := func() bool {
				l := expect()
				// Processed: a plan still running for an older commit
				// could overwrite a map write made now (the shared map has
				// no compare-and-swap), so wait until the engine is idle.
				ok := e.Processed() >= lastCommit && converged(st, rs, l) && shmW.State().Level == l && bpf.State().Level == l
				if !ok && os.Getenv("DEBUG_POSTURE") != "" {
					t.Logf("want %d (cfg %d ext %d): effective %d shm %d bpf %d handshake %d notary %d", l, cfg, ext,
						effectiveLevel(st), shmW.State().Level, bpf.State().Level, rs[0].last().Level, rs[1].last().Level)
				}
				return ok
			}
			for range 30 {
				if rng.IntN(5) > 0 {
					cfg = uint8(1 + rng.IntN(5))
					lastCommit = setLevel(t, st, cfg) // no waiting: bursts coalesce
					continue
				}
				// Another program writes the map. It must differ from what
				// the engine wrote last, or the engine cannot tell.
				waitFor(t, "settling before a map write", settled)
				ext = uint8(1 + rng.IntN(4))
				if ext >= bpf.State().Level {
					ext++
				}
				bpf.WriteLevel(ext)
				waitFor(t, "the map write to take effect", settled)
			}
			final := expect()
			waitFor(t, "convergence on level "+strconv.Itoa(int(final)), settled)
			a, _ := accord.Default(final)
			if got := shmW.State(); got != (shm.Config{Level: final, Flags: VPPFlowFlags(a)}) {
				t.Errorf("shm holds %+v, want level %d", got, final)
			}
			var wantRoutes route.Config
			var wantMesh wgmesh.Config
			_ = st.Read(func(tr *tree.Tree) error {
				wantRoutes, _ = intent.RouteConfig(tr, a)
				wantMesh = intent.Mesh(tr, a, base)
				return nil
			})
			waitFor(t, "routes and mesh on the final accord", func() bool {
				last, _ := meshFake.Last()
				return len(routeFake.Routes()) == len(wantRoutes.Routes) && len(last.Peers) == len(wantMesh.Peers)
			})
			var gotDst, wantDst []string
			for _, r := range routeFake.Routes() {
				gotDst = append(gotDst, r.Dst.String())
			}
			for _, r := range wantRoutes.Routes {
				wantDst = append(wantDst, r.Dst.String())
			}
			slices.Sort(gotDst)
			slices.Sort(wantDst)
			if d := cmp.Diff(wantDst, gotDst); d != "" {
				t.Errorf("routes in the fake kernel at level %d (-want +got):\n%s", final, d)
			}
			last, _ := meshFake.Last()
			for i, p := range wantMesh.Peers {
				if last.Peers[i].Name != p.Name || last.Peers[i].PersistentKeepalive != p.PersistentKeepalive {
					t.Fatalf("peer %d: %+v, want %+v", i, last.Peers[i], p)
				}
			}
		})
	}
}

// TestStateAndHistory checks what the engine writes to the tree: levels,
// source, the last transition with its steps, a history bounded at 64,
// and all five effective accords.
func TestStateAndHistory(t *testing.T) {
	st := openStore(t)
	rs := allStages()
	rep := &reports{}
	start(t, st, Options{Steps: asSteps(rs), OnReport: rep.add})
	waitFor(t, "start-up convergence", func() bool { return len(rep.all()) == 1 })
	levels := []uint8{4, 1, 5}
	for i := 0; len(rep.all()) < 70; i++ {
		n := len(rep.all())
		setLevel(t, st, levels[i%3])
		waitFor(t, "transition", func() bool { return len(rep.all()) > n })
	}
	last := rep.all()[len(rep.all())-1]
	var hist []uint64
	var stepNames []string
	var accords []accord.Accord
	_ = st.Read(func(tr *tree.Tree) error {
		p := tr.Root().Sub("kedge").Sub("posture")
		p.Sub("history").Entries("transition", func(e *tree.Inst) bool {
			hist = append(hist, e.Keys()[0].UintVal())
			return true
		})
		lt := p.Sub("state").Sub("last-transition")
		if got := uint8(lt.Get("to-level").UintVal()); got != last.To {
			t.Errorf("last-transition to-level %d, want %d", got, last.To)
		}
		if lt.Get("result").Str() != ResultOK {
			t.Errorf("last-transition result %q", lt.Get("result").Str())
		}
		stepNames = make([]string, lt.Sub("steps").Len("step"))
		lt.Sub("steps").Entries("step", func(e *tree.Inst) bool {
			s := e.Sub("state")
			stepNames[s.Get("index").UintVal()] = s.Get("name").Str()
			if s.Get("result").Str() != "ok" || !s.Get("duration-ns").IsSet() || s.Get("started").UintVal() == 0 {
				t.Errorf("step %s: result %q, duration %v, started %v", s.Get("name"), s.Get("result"), s.Get("duration-ns"), s.Get("started"))
			}
			return true
		})
		tr.Root().Sub("kedge").Sub("accords").Entries("accord", func(e *tree.Inst) bool {
			s := e.Sub("state")
			a := accord.Accord{Level: uint8(s.Get("level").UintVal()), VPPFlowPolicy: s.Get("vpp-flow-policy").Str(),
				NotarySamplingPercent: uint8(s.Get("notary-sampling-percent").UintVal())}
			accords = append(accords, a)
			return true
		})
		return nil
	})
	if len(hist) != HistoryLen {
		t.Errorf("history holds %d transitions, want %d", len(hist), HistoryLen)
	}
	for _, seq := range hist {
		if seq <= last.Seq-HistoryLen {
			t.Errorf("history kept transition %d, older than the last %d", seq, HistoryLen)
		}
	}
	lastAccord, _ := accord.Default(last.To)
	if d := cmp.Diff(BuildPlan(asSteps(rs), last.From, last.To, lastAccord).Names(), stepNames); d != "" {
		t.Errorf("last-transition steps (-want +got):\n%s", d)
	}
	if got := postureState(st, "sequence").UintVal(); got != last.Seq {
		t.Errorf("sequence %d, want %d", got, last.Seq)
	}
	if src := postureState(st, "source").Str(); src != SourceConfig {
		t.Errorf("source %q", src)
	}
	if len(accords) != 5 {
		t.Fatalf("%d accords in state, want 5", len(accords))
	}
	for _, a := range accords {
		d, _ := accord.Default(a.Level)
		if a.VPPFlowPolicy != d.VPPFlowPolicy || a.NotarySamplingPercent != d.NotarySamplingPercent {
			t.Errorf("accord state of level %d: %+v", a.Level, a)
		}
	}
}

// TestExternalLevel: a level another program writes into the map lowers the
// effective level; the engine's own write of it is not mistaken for a new
// request; the program relaxing the map lets config rule again.
func TestExternalLevel(t *testing.T) {
	st := openStore(t)
	src := &fakeSource{}
	bpf := &recStep{name: "bpf-map", stage: StageBPF}
	// The step writes what the engine asks into the source, like the map.
	bpf.hook = func(_ context.Context, tr Transition) { src.set(tr.To) }
	rs := []*recStep{bpf, {name: "routes", stage: StageRoutes}}
	start(t, st, Options{Steps: asSteps(rs), LevelSource: src})
	waitFor(t, "level 5", func() bool { return converged(st, rs, 5) })
	setLevel(t, st, 3)
	waitFor(t, "level 3", func() bool { return converged(st, rs, 3) })

	src.set(2) // the governance daemon escalates through the map
	waitFor(t, "level 2 from the map", func() bool { return converged(st, rs, 2) })
	if s := postureState(st, "source").Str(); s != SourceBPFMap {
		t.Errorf("source %q, want %q", s, SourceBPFMap)
	}
	if l := postureState(st, "level").UintVal(); l != 3 {
		t.Errorf("state level (intended) %d, want 3", l)
	}
	setLevel(t, st, 1) // config is stricter now
	waitFor(t, "level 1 from config", func() bool { return converged(st, rs, 1) })
	setLevel(t, st, 4) // the map's request of 2 still stands
	waitFor(t, "back to the map's 2", func() bool { return converged(st, rs, 2) })
	src.set(5) // the daemon relaxes
	waitFor(t, "config's 4", func() bool { return converged(st, rs, 4) })
	if s := postureState(st, "source").Str(); s != SourceConfig {
		t.Errorf("source %q, want %q", s, SourceConfig)
	}
	// A looser write does not loosen the map: the engine puts 4 back.
	n := len(bpf.transitions())
	src.set(5)
	waitFor(t, "the map back at 4", func() bool { l, _ := src.Level(); return l == 4 && len(bpf.transitions()) > n })
	if got := bpf.transitions()[len(bpf.transitions())-1]; got.From != 4 || got.To != 4 {
		t.Errorf("re-asserting the map ran %d→%d, want a convergence at 4", got.From, got.To)
	}
}

// TestFailedStepRetried: a failing step leaves the transition partial, the
// others applied, and the plan is retried until it succeeds.
func TestFailedStepRetried(t *testing.T) {
	st := openStore(t)
	rs := allStages()
	rep := &reports{}
	start(t, st, Options{Steps: asSteps(rs), OnReport: rep.add, RetryMin: 1e6, RetryMax: 4e6})
	waitFor(t, "start-up", func() bool { return len(rep.all()) == 1 })
	rs[4].mu.Lock()
	rs[4].fail = 3 // mesh
	rs[4].mu.Unlock()
	setLevel(t, st, 2)
	waitFor(t, "level 2 applied everywhere", func() bool { return converged(st, rs, 2) })
	waitFor(t, "an ok report", func() bool { r := rep.all(); return r[len(r)-1].Result == ResultOK })
	got := rep.all()[1:]
	if len(got) != 4 {
		t.Fatalf("%d reports after the change, want 4 (3 partial, 1 ok): %+v", len(got), got)
	}
	for i, r := range got {
		want := ResultPartial
		if i == 3 {
			want = ResultOK
		}
		if r.Result != want || r.Seq != got[0].Seq || r.To != 2 {
			t.Errorf("report %d: seq %d to %d result %s; want seq %d to 2 result %s", i, r.Seq, r.To, r.Result, got[0].Seq, want)
		}
		if i < 3 {
			for _, s := range r.Steps {
				if (s.Name == "mesh") != (s.Result == ResultFailed) {
					t.Errorf("report %d: step %s result %s", i, s.Name, s.Result)
				}
			}
		}
	}
	if r := readRecord(t, st); r.Inflight != nil {
		t.Errorf("in-flight record left after success: %+v", r.Inflight)
	}
}

// TestAccordOverride: an override of the current level's accord re-runs
// the plan at that level with the new accord and shows in accord state.
func TestAccordOverride(t *testing.T) {
	st := openStore(t)
	rs := allStages()
	start(t, st, Options{Steps: asSteps(rs)})
	waitFor(t, "level 5", func() bool { return converged(st, rs, 5) })
	base := "/kedge/accords/accord[level=5]/config/"
	_, err := st.Commit(context.Background(), []store.Op{
		{Kind: store.OpUpdate, Path: mustPath(t, base+"level"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 5}}},
		{Kind: store.OpUpdate, Path: mustPath(t, base+"keepalive-seconds"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 7}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the routes step to get keepalive 7", func() bool { return rs[5].last().KeepaliveSeconds == 7 })
	waitFor(t, "accord state to show it", func() bool {
		var ka uint64
		_ = st.Read(func(tr *tree.Tree) error {
			tr.Root().Sub("kedge").Sub("accords").Entries("accord", func(e *tree.Inst) bool {
				if e.Keys()[0].UintVal() == 5 {
					ka = e.Sub("state").Get("keepalive-seconds").UintVal()
				}
				return true
			})
			return nil
		})
		return ka == 7
	})
	if a := rs[5].last(); a.Level != 5 || a.OverlayMode != accord.OverlayFull {
		t.Errorf("routes step got %+v", a)
	}
}
