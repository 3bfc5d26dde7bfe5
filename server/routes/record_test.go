package routes

import (
	"testing"

	"github.com/guildhouse-co/kedge/internal/maproom"
	"github.com/guildhouse-co/kedge/models/intent"
)

// TestStateRecord checks the record keeps route, pod and gRIBI entries
// apart, gives back what was set, and shares one value between routes
// (and between gRIBI IP entries) whose status has no reason.
func TestStateRecord(t *testing.T) {
	r := newStateRecord(0)
	route1, route2 := stateKey{a: "10.0.0.0/24", table: 254}, stateKey{a: "10.0.1.0/24", table: 254}
	other := stateKey{a: "10.0.0.0/24", table: 100}
	pod := stateKey{pod: true, a: "10.0.0.0/24", b: "eth0"}
	aft := stateKey{aft: intent.AFTIPv4, a: "10.0.0.0/24"}
	aft6 := stateKey{aft: intent.AFTIPv6, a: "10.0.0.0/24"} // not the IPv4 entry
	hop := stateKey{aft: intent.AFTNextHop, id: 1}
	set := map[stateKey]stateVal{
		route1: {status: statusInstalled},
		route2: {status: statusInstalled},
		other:  {statusFailed, "no such device"},
		pod:    {statusWithheld, "level 1"},
		aft:    {status: statusPending},
		aft6:   {status: statusInstalled},
		hop:    {status: statusPending},
	}
	for k, v := range set {
		r.set(k, v)
	}
	if r.len() != len(set) {
		t.Fatalf("len %d, want %d", r.len(), len(set))
	}
	for k, want := range set {
		if got, ok := r.get(k); !ok || got != want {
			t.Errorf("get %+v = %+v %v, want %+v", k, got, ok, want)
		}
	}
	if _, ok := r.get(stateKey{a: "10.9.0.0/24", table: 254}); ok {
		t.Error("an entry never set is known")
	}
	if r.routes[routeID{route1.a, 254}] != r.routes[routeID{route2.a, 254}] {
		t.Error("two installed routes hold a value each, not the shared one")
	}
	r.reserveAFT(maproom.Min) // room for a batch keeps every entry
	for k, want := range set {
		if got, ok := r.get(k); !ok || got != want {
			t.Errorf("after reserve: get %+v = %+v %v, want %+v", k, got, ok, want)
		}
	}
	r.set(aft6, stateVal{status: statusPending})
	if r.aft[aftID{intent.AFTIPv4, aft.a}] != r.aft[aftID{intent.AFTIPv6, aft6.a}] {
		t.Error("two pending gRIBI entries hold a value each, not the shared one")
	}
	r.set(route1, stateVal{statusFailed, "gone"})
	if got, _ := r.get(route2); got != (stateVal{status: statusInstalled}) {
		t.Errorf("changing one route's value changed another's: %+v", got)
	}
}

// TestStateRecordSharesWithoutAllocating: recording a status without a
// reason for a route or gRIBI entry already recorded allocates nothing
// (shareVal took its argument's address, which moved the argument to the
// heap on every call, shared or not).
func TestStateRecordSharesWithoutAllocating(t *testing.T) {
	r := newStateRecord(1)
	route, aft := stateKey{a: "10.0.0.0/24", table: 254}, stateKey{aft: intent.AFTIPv4, a: "10.0.1.0/24"}
	r.set(route, stateVal{status: statusPending})
	r.set(aft, stateVal{status: statusPending})
	vals := []stateVal{{status: statusInstalled}, {status: statusFailed}}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		r.set(route, vals[i%2])
		r.set(aft, vals[i%2])
		i++
	}); n != 0 {
		t.Errorf("%.1f allocations recording two shared values, want 0", n)
	}
	if got, _ := r.get(aft); got != vals[(i-1)%2] {
		t.Errorf("recorded %+v, want %+v", got, vals[(i-1)%2])
	}
}
