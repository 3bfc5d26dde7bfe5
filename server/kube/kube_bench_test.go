package kube

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// levelWatch reports when a node's tree first shows an effective level.
func levelWatch(ctx context.Context, st *store.Store, level uint8, at *time.Time, wg *sync.WaitGroup) {
	w := st.Watch()
	want := strconv.Itoa(int(level))
	wg.Go(func() {
		for {
			c, err := w.Next(ctx)
			if err != nil {
				return
			}
			for _, ch := range c.Changes {
				if ch.Node.Path == "/kedge/posture/state/effective-level" && ch.Val.String() == want {
					*at = time.Now()
					return
				}
			}
		}
	})
}

// BenchmarkClusterPosture: time from a change of the cluster's posture
// object (the API call's start) until every node's posture engine has
// made it the node's effective level, for 3 and 20 nodes. Each node is a
// real tree store, posture engine (no dataplane steps) and component,
// with its own identity, against one real API server. 10 changes
// alternating 1 and 5; p50 and max over them of the slowest node.
func BenchmarkClusterPosture(b *testing.B) {
	for _, n := range []int{3, 20} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			e := newEnv(b)
			nodes := make([]*node, n)
			for i := range n {
				nodes[i] = newNode(b, fmt.Sprintf("b%02d", i), i)
				e.addNode(b, nodes[i].name, fmt.Sprintf("10.88.%d.%d", i/250, i%250+1))
				nodes[i].start(b, e, Options{})
			}
			eventually(b, "every node at 5", waitLong, func() bool {
				for _, nd := range nodes {
					if nd.local().EffectiveLevel != 5 {
						return false
					}
				}
				return true
			})
			var all, slowest []float64
			b.ResetTimer()
			for range b.N {
				for k := range 10 {
					level := uint8(1)
					if k%2 == 1 {
						level = 5
					}
					ctx, cancel := context.WithTimeout(context.Background(), waitLong)
					at := make([]time.Time, n)
					var wg sync.WaitGroup
					for i, nd := range nodes {
						levelWatch(ctx, nd.st, level, &at[i], &wg)
					}
					start := time.Now()
					e.setPosture(b, int(level))
					wg.Wait()
					cancel()
					worst := 0.0
					for i, t := range at {
						if t.IsZero() {
							b.Fatalf("node %s never reached level %d", nodes[i].name, level)
						}
						ms := float64(t.Sub(start).Microseconds()) / 1000
						all = append(all, ms)
						worst = max(worst, ms)
					}
					slowest = append(slowest, worst)
				}
			}
			b.StopTimer()
			report(b, "every-node", slowest)
			report(b, "one-node", all)
		})
	}
}

// BenchmarkJoinMesh: time for a new node to join a mesh of 20: from its
// component's start (its key already in its tree) until all 20 have it
// as a peer and it has all 20.
func BenchmarkJoinMesh(b *testing.B) {
	const n = 20
	e := newEnv(b)
	nodes := make([]*node, n)
	for i := range n {
		nodes[i] = newNode(b, fmt.Sprintf("j%02d", i), i)
		e.addNode(b, nodes[i].name, fmt.Sprintf("10.88.0.%d", i+1))
		nodes[i].start(b, e, Options{})
	}
	eventually(b, "a mesh of 20", waitLong, func() bool {
		for _, nd := range nodes {
			if len(nd.local().Peers) != n-1 {
				return false
			}
		}
		return true
	})
	var joins []float64
	b.ResetTimer()
	for k := range b.N * 5 {
		name := fmt.Sprintf("new%02d", k)
		nd := newNode(b, name, n+k)
		e.addNode(b, name, fmt.Sprintf("10.88.1.%d", k+1))
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		var wg sync.WaitGroup
		at := make([]time.Time, n)
		for i, o := range nodes {
			peerWatch(ctx, o.st, name, &at[i], &wg)
		}
		start := time.Now()
		nd.start(b, e, Options{})
		eventually(b, name+" to have every peer", waitLong, func() bool { return len(nd.local().Peers) == n })
		self := time.Now()
		wg.Wait()
		cancel()
		last := self
		for i, t := range at {
			if t.IsZero() {
				b.Fatalf("%s never got %s as a peer", nodes[i].name, name)
			}
			if t.After(last) {
				last = t
			}
		}
		joins = append(joins, float64(last.Sub(start).Microseconds())/1000)
		// Leave again, so every round joins a mesh of exactly 20.
		nd.stop()
		if err := e.admin.kedge.Delete().Resource("kedgenodes").Name(name).Do(context.Background()).Error(); err != nil {
			b.Fatal(err)
		}
		eventually(b, name+" to leave", waitLong, func() bool {
			for _, o := range nodes {
				if _, ok := o.local().Peers[name]; ok {
					return false
				}
			}
			return true
		})
	}
	b.StopTimer()
	report(b, "join", joins)
}

func peerWatch(ctx context.Context, st *store.Store, name string, at *time.Time, wg *sync.WaitGroup) {
	w := st.Watch()
	leaf := "/kedge/mesh/peers/peer/config/public-key"
	wg.Go(func() {
		for {
			c, err := w.Next(ctx)
			if err != nil {
				return
			}
			for _, ch := range c.Changes {
				if ch.Node.Path == leaf && strings.Contains(ch.Path(), "[name="+name+"]") {
					*at = time.Now()
					return
				}
			}
		}
	})
}

func report(b *testing.B, name string, ms []float64) {
	if len(ms) == 0 {
		return
	}
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], name+"-p50-ms")
	b.ReportMetric(ms[len(ms)*9/10], name+"-p90-ms")
	b.ReportMetric(ms[len(ms)-1], name+"-max-ms")
}
