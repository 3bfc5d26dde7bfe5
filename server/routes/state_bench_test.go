package routes

import (
	"context"
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// BenchmarkAFTState times the state the route applier writes after a
// gRIBI bulk load's routes are in: 100,000 IPv4 entries' status, built
// (stateWriter.put) and committed (CommitState) in one commit, as the
// last part of a bulk change does; each round flips every status
// between installed and failed (with a reason) so every entry is written.
func BenchmarkAFTState(b *testing.B) {
	const n = 100_000
	st := yangtest.Store(b)
	keys := make([]stateKey, n)
	ops := make([]store.Op, 0, 2*n)
	a := netip.MustParseAddr("10.128.0.0")
	for i := range keys {
		p := netip.PrefixFrom(a, 32).String()
		keys[i] = stateKey{aft: intent.AFTIPv4, a: p}
		c := kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4Entry(p).Config()
		ops = append(ops, store.Update(c.Prefix(), p), store.Update(c.NextHopGroup(), 1))
		a = a.Next()
	}
	flipStates(b, st, ops, keys)
}

// BenchmarkAFTStateNew times the state writer's operations for a bulk
// load's 100,000 new IPv4 entries (no state yet, into a record that has
// none of them), the puts alone: what deltaStateOps does per entry
// before the commit, which BenchmarkAFTState's commit outweighs.
func BenchmarkAFTStateNew(b *testing.B) {
	const n = 100_000
	keys := make([]stateKey, n)
	a := netip.MustParseAddr("10.128.0.0")
	for i := range keys {
		keys[i] = stateKey{aft: intent.AFTIPv4, a: netip.PrefixFrom(a, 32).String()}
		a = a.Next()
	}
	v := stateVal{status: statusInstalled}
	for b.Loop() {
		w := &stateWriter{written: newStateRecord(0), ops: make([]store.Op, 0, n)}
		w.written.reserveAFT(n)
		for _, k := range keys {
			w.put(k, v, false)
		}
		if len(w.ops) != n {
			b.Fatalf("%d operations, want %d", len(w.ops), n)
		}
	}
}

// BenchmarkRouteState is BenchmarkAFTState for /kedge/routes: the state
// the route applier writes after a gNMI bulk load's 100,000 routes are
// in, built and committed in one commit, every status flipped each round.
func BenchmarkRouteState(b *testing.B) {
	const n = 100_000
	st := yangtest.Store(b)
	keys := make([]stateKey, n)
	ops := make([]store.Op, 0, 3*n)
	a := netip.MustParseAddr("10.128.0.0")
	for i := range keys {
		p := netip.PrefixFrom(a, 32).String()
		keys[i] = stateKey{a: p, table: 254}
		c := kedgepath.Root().Kedge().Routes().Route(p, 254).Config()
		ops = append(ops, store.Update(c.Prefix(), p), store.Update(c.Table(), 254), store.Update(c.Device(), "eth0"))
		a = a.Next()
	}
	flipStates(b, st, ops, keys)
}

// BenchmarkRouteStateNew is BenchmarkAFTStateNew for /kedge/routes: the
// puts alone for a bulk load's 100,000 new routes.
func BenchmarkRouteStateNew(b *testing.B) {
	const n = 100_000
	keys := make([]stateKey, n)
	a := netip.MustParseAddr("10.128.0.0")
	for i := range keys {
		keys[i] = stateKey{a: netip.PrefixFrom(a, 32).String(), table: 254}
		a = a.Next()
	}
	v := stateVal{status: statusInstalled}
	for b.Loop() {
		w := &stateWriter{written: newStateRecord(n), ops: make([]store.Op, 0, n)}
		for _, k := range keys {
			w.put(k, v, false)
		}
		if len(w.ops) != n {
			b.Fatalf("%d operations, want %d", len(w.ops), n)
		}
	}
}

// flipStates commits ops (the entries' config), then times writing and
// committing every entry's state in one commit, each round flipping
// every status between installed and failed with a reason.
func flipStates(b *testing.B, st *store.Store, ops []store.Op, keys []stateKey) {
	if _, err := st.Commit(context.Background(), ops); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	vals := [2]stateVal{{status: statusInstalled}, {statusFailed, "no route to 192.0.2.1"}}
	written := newStateRecord(0)
	for i := 0; b.Loop(); i++ {
		w := &stateWriter{written: written}
		v := vals[i%2]
		for _, k := range keys {
			w.put(k, v, i > 0)
		}
		if _, err := st.CommitState(ctx, w.ops); err != nil {
			b.Fatal(err)
		}
	}
}
