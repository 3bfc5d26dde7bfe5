package rtnl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/tests/needs"
	"golang.org/x/sys/unix"
)

func testNS(t *testing.T) string {
	t.Helper()
	needs.Root(t, "creates network namespaces")
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "rtnl-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("add netns: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func openNS(t *testing.T, name string) *Conn {
	t.Helper()
	c, err := Open(NSPath(name))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKindSupported(t *testing.T) {
	ns := testNS(t)
	c := openNS(t, ns)
	for kind, want := range map[string]bool{"macvlan": true, "kedge-no-such-kind": false} {
		got, err := c.KindSupported(kind)
		if err != nil || got != want {
			t.Errorf("KindSupported(%q) = %t, %v; want %t", kind, got, err, want)
		}
	}
	vlan, err := c.VLANSupported()
	t.Logf("vlan supported: %t, %v", vlan, err)
	links, err := c.Links()
	if err != nil {
		t.Fatalf("links: %v", err)
	}
	if len(links) != 1 || links[0].Name != "lo" {
		t.Errorf("probes left links behind: %+v", links)
	}
}

// TestExecAcksMappedBySequence sends good and bad requests in one batch and
// checks each result lands on its own request.
func TestExecAcksMappedBySequence(t *testing.T) {
	ns := testNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	c := openNS(t, ns)
	lo := 1
	mk := func(dst string, gw string) Request {
		r := Route{Dst: netip.MustParsePrefix(dst), OIF: lo, Table: 254, Protocol: 107, Type: unix.RTN_UNICAST, Scope: unix.RT_SCOPE_LINK}
		if gw != "" {
			r.Gateway, r.Scope = netip.MustParseAddr(gw), unix.RT_SCOPE_UNIVERSE
		}
		return NewRoute(r, FlagCreate)
	}
	reqs := []Request{
		mk("10.1.0.0/24", ""),
		mk("10.2.0.0/24", "192.0.2.1"), // no connected network
		mk("10.3.0.0/24", ""),
		mk("10.1.0.0/24", ""), // exists now
		mk("10.4.0.0/24", ""),
	}
	errs, err := c.Exec(context.Background(), reqs, 2)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	wantErr := []error{nil, unix.ENETUNREACH, nil, unix.EEXIST, nil}
	for i := range reqs {
		if (wantErr[i] == nil) != (errs[i] == nil) || (wantErr[i] != nil && !errors.Is(errs[i], wantErr[i])) {
			t.Errorf("request %d: got %v, want %v", i, errs[i], wantErr[i])
		}
	}
	if !strings.Contains(errs[1].Error(), "gateway") {
		t.Errorf("no extended ack message: %v", errs[1])
	}
	if got := c.Counters(); got.Sends != 3 || got.Messages != 5 {
		t.Errorf("counters %+v, want 5 messages in 3 sends", got)
	}
	rs := wantRoutes(t, c, "10.1.0.0/24", "10.3.0.0/24", "10.4.0.0/24")
	del, err := c.Exec(context.Background(), []Request{DelRoute(rs[0]), DelRoute(rs[0])}, 0)
	if err != nil || del[0] != nil || !errors.Is(del[1], unix.ESRCH) {
		t.Errorf("delete twice: %v %v", del, err)
	}
}

// TestExecErrorsAmongSuccesses sends one batch whose failing requests sit
// between successes, first and last: only the last message asks for an
// acknowledgement, so each failure must still land on its own request and
// each request without an answer must be one the kernel applied.
func TestExecErrorsAmongSuccesses(t *testing.T) {
	ns := testNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	c := openNS(t, ns)
	mk := func(dst string) Request {
		r := Route{Dst: netip.MustParsePrefix(dst), OIF: 1, Table: 254, Protocol: 107, Type: unix.RTN_UNICAST, Scope: unix.RT_SCOPE_LINK}
		if dst == "10.9.0.0/24" {
			r.Gateway, r.Scope = netip.MustParseAddr("192.0.2.1"), unix.RT_SCOPE_UNIVERSE // no connected network
		}
		return NewRoute(r, FlagCreate)
	}
	for _, tc := range []struct {
		name string
		dsts []string
		want []error
	}{
		{"failures between successes", []string{"10.9.0.0/24", "10.1.0.0/24", "10.1.0.0/24", "10.2.0.0/24", "10.9.0.0/24", "10.3.0.0/24"},
			[]error{unix.ENETUNREACH, nil, unix.EEXIST, nil, unix.ENETUNREACH, nil}},
		{"the last fails too", []string{"10.4.0.0/24", "10.4.0.0/24", "10.9.0.0/24"},
			[]error{nil, unix.EEXIST, unix.ENETUNREACH}},
		{"every one fails", []string{"10.1.0.0/24", "10.9.0.0/24", "10.2.0.0/24"},
			[]error{unix.EEXIST, unix.ENETUNREACH, unix.EEXIST}},
	} {
		reqs := make([]Request, len(tc.dsts))
		for i, d := range tc.dsts {
			reqs[i] = mk(d)
		}
		before := c.Counters()
		errs, err := c.Exec(context.Background(), reqs, 0)
		if err != nil {
			t.Fatalf("%s: exec: %v", tc.name, err)
		}
		for i := range reqs {
			if (tc.want[i] == nil) != (errs[i] == nil) || (tc.want[i] != nil && !errors.Is(errs[i], tc.want[i])) {
				t.Errorf("%s: request %d (%s): got %v, want %v", tc.name, i, tc.dsts[i], errs[i], tc.want[i])
			}
		}
		if got := c.Counters(); got.Sends-before.Sends != 1 {
			t.Errorf("%s: %d sends, want the batch in one", tc.name, got.Sends-before.Sends)
		}
	}
	wantRoutes(t, c, "10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24")
}

// wantRoutes checks that the namespace holds exactly the protocol-107
// routes to dsts, and returns them.
func wantRoutes(t *testing.T, c *Conn, dsts ...string) []Route {
	t.Helper()
	rs, err := c.Routes(107)
	if err != nil {
		t.Fatalf("routes: %v", err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Dst.String())
	}
	if diff := cmp.Diff(dsts, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	return rs
}

func TestParseRoundTrip(t *testing.T) {
	r := Route{Dst: netip.MustParsePrefix("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00::2"), OIF: 7,
		Table: 1000, Priority: 5, Src: netip.MustParseAddr("fd00::1"), Protocol: 107, Type: unix.RTN_UNICAST}
	req := NewRoute(r, FlagReplace)
	got, ok, err := parseRoute(req.Body)
	if err != nil || !ok {
		t.Fatalf("parse: %v %t", err, ok)
	}
	if diff := cmp.Diff(r, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	rule := Rule{Family: unix.AF_INET, Priority: 10, Src: netip.MustParsePrefix("10.0.0.0/8"), Table: 300, Mark: 1, Mask: 3, Protocol: 107}
	gotRule, err := parseRule(NewRule(rule).Body)
	if err != nil || gotRule != rule {
		t.Errorf("rule round trip: got %+v, %v; want %+v", gotRule, err, rule)
	}
}

// TestExecEchoResolvesDevice: routes sent with FlagEcho and given only a
// gateway come back from the kernel with the device it resolved, each
// under its own request's index across batches; a request without the
// flag or one the kernel refused echoes nothing.
func TestExecEchoResolvesDevice(t *testing.T) {
	ns := testNS(t)
	for _, args := range [][]string{
		{"link", "add", "eca", "type", "veth", "peer", "name", "ecb"},
		{"addr", "add", "10.6.0.1/24", "dev", "eca"},
		{"addr", "add", "fd06::1/64", "dev", "eca", "nodad"},
		{"link", "set", "ecb", "up"},
		{"link", "set", "eca", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	c := openNS(t, ns)
	links, err := c.Links()
	if err != nil {
		t.Fatalf("links: %v", err)
	}
	eca := 0
	for _, l := range links {
		if l.Name == "eca" {
			eca = l.Index
		}
	}
	mk := func(dst, gw string, flags uint16) Request {
		return NewRoute(Route{Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr(gw), Table: 254,
			Protocol: 107, Type: unix.RTN_UNICAST}, flags)
	}
	reqs := []Request{
		mk("10.7.0.0/24", "10.6.0.2", FlagCreate),           // no echo asked
		mk("10.8.0.0/24", "192.0.2.1", FlagCreate|FlagEcho), // unreachable: refused
		mk("10.9.0.0/24", "10.6.0.2", FlagCreate|FlagEcho),
		mk("fd09::/64", "fd06::2", FlagCreate|FlagEcho),
	}
	got := map[int]int{}
	errs, err := c.ExecEcho(context.Background(), reqs, 2, func(i int, r Route) {
		if r.Dst != netip.MustParsePrefix([]string{"10.7.0.0/24", "10.8.0.0/24", "10.9.0.0/24", "fd09::/64"}[i]) {
			t.Errorf("echo %d is of %s", i, r.Dst)
		}
		got[i] = r.OIF
	})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], unix.ENETUNREACH) || errs[2] != nil || errs[3] != nil {
		t.Fatalf("exec: %v %v", errs, err)
	}
	if diff := cmp.Diff(map[int]int{2: eca, 3: eca}, got); diff != "" {
		t.Errorf("echoed devices by request (-want +got):\n%s", diff)
	}
}
