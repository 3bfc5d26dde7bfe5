package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// BenchmarkTierCheck prices WriteChanges: the same Sets by master (whose
// commits are not checked: nothing ranks above it) and by an operator
// (every touched route entry checked), side by side in one run. "bulk" is
// one Set of 10,000 routes as a JSON_IETF list; "leaf" is a single-leaf
// Set on a tree holding those routes.
func BenchmarkTierCheck(b *testing.B) {
	const routes = 10000
	var sb strings.Builder
	sb.WriteString(`{"kedge:route":[`)
	for i := range routes {
		if i > 0 {
			sb.WriteByte(',')
		}
		pfx := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
		fmt.Fprintf(&sb, `{"prefix":%q,"table":254,"config":{"prefix":%q,"table":254,"device":"eth0","next-hop":"192.0.2.1","tier":"operator"}}`, pfx, pfx)
	}
	sb.WriteString(`]}`)
	bulk := &gpb.SetRequest{Replace: []*gpb.Update{{Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "kedge"}, {Name: "routes"}}},
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(sb.String())}}}}}
	leafPath := []*gpb.PathElem{{Name: "kedge"}, {Name: "routes"},
		{Name: "route", Key: map[string]string{"prefix": "10.0.7.0/24", "table": "254"}}, {Name: "config"}, {Name: "metric"}}

	for b.Loop() {
		bulkTook := map[Tier]time.Duration{}
		leaf := map[Tier][]time.Duration{}
		// Each twice, alternating; the second round counts (the first warms
		// up the process).
		for round, tier := range []Tier{Master, Operator, Master, Operator} {
			ta := &timedAuth{Authorizer: Authorizer{Policy: DefaultPolicy()}}
			e := newTierEnvWith(b, ta)
			t0 := time.Now()
			if _, err := e.srv.Set(as(tier), bulk); err != nil {
				b.Fatal(err)
			}
			took := time.Since(t0)
			if round == 3 {
				b.ReportMetric(float64(ta.took.Nanoseconds())/routes, "check-bulk-ns/route")
			}
			ta.took = 0
			var times []time.Duration
			for i := range 2000 {
				req := &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: leafPath},
					Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(i%1000 + 1)}}}}}
				t0 := time.Now()
				if _, err := e.srv.Set(as(tier), req); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			e.srv.Close()
			e.st.Close()
			if round == 3 {
				b.ReportMetric(float64(ta.took.Nanoseconds())/float64(len(times)), "check-leaf-ns")
			}
			if round >= 2 {
				slices.Sort(times)
				bulkTook[tier], leaf[tier] = took, times
			}
		}
		b.ReportMetric(float64(bulkTook[Master].Milliseconds()), "bulk-master-ms")
		b.ReportMetric(float64(bulkTook[Operator].Milliseconds()), "bulk-operator-ms")
		b.ReportMetric(float64(bulkTook[Operator])/float64(bulkTook[Master]), "bulk-operator/master")
		b.ReportMetric(float64(pct(leaf[Master], 50).Microseconds()), "leaf-master-p50-µs")
		b.ReportMetric(float64(pct(leaf[Operator], 50).Microseconds()), "leaf-operator-p50-µs")
		b.ReportMetric(float64(pct(leaf[Operator], 99).Microseconds()), "leaf-operator-p99-µs")
		b.ReportMetric(float64(pct(leaf[Operator], 50))/float64(pct(leaf[Master], 50)), "leaf-operator/master")
	}
}

// timedAuth adds up the time spent in WriteChanges.
type timedAuth struct {
	Authorizer
	took time.Duration
}

func (a *timedAuth) WriteChanges(ctx context.Context, p store.Proposed) error {
	t0 := time.Now()
	err := a.Authorizer.WriteChanges(ctx, p)
	a.took += time.Since(t0)
	return err
}
