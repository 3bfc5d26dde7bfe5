package gribi

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// leafOps are the per-leaf operations an IP entry's write stands for:
// every leaf of its config (the prefix included), optional ones deleted
// when the entry existed without them.
func leafOps(e *aft.Entry, existed bool) []store.Op {
	pfx := e.IP.Prefix.String()
	c4 := aftPath.Ipv4Entries().Ipv4Entry(pfx).Config()
	c6 := aftPath.Ipv6Entries().Ipv6Entry(pfx).Config()
	v4 := e.Kind == aft.KindIPv4
	var ops []store.Op
	if v4 {
		ops = append(ops, store.Update(c4.Prefix(), pfx), store.Update(c4.NextHopGroup(), e.IP.NHG), store.Update(c4.Session(), e.Meta.Session))
	} else {
		ops = append(ops, store.Update(c6.Prefix(), pfx), store.Update(c6.NextHopGroup(), e.IP.NHG), store.Update(c6.Session(), e.Meta.Session))
	}
	md := base64.StdEncoding.EncodeToString(e.IP.Metadata)
	switch {
	case len(e.IP.Metadata) > 0 && v4:
		ops = append(ops, store.Update(c4.Metadata(), md))
	case len(e.IP.Metadata) > 0:
		ops = append(ops, store.Update(c6.Metadata(), md))
	case existed && v4:
		ops = append(ops, store.Delete(c4.Metadata()))
	case existed:
		ops = append(ops, store.Delete(c6.Metadata()))
	}
	return ops
}

// TestIPEntryOpCommitsAsLeaves: the gRIBI writer's one operation per IP
// entry (its leaf writes from shared chunks, group and session values
// shared between entries, the prefix leaf left to the tree's key mirror)
// commits exactly what the per-leaf writes of every config leaf do, in
// the tree and in the change feed, through entries added, replaced with
// and without metadata, moved to another group and session, of both
// families, in one commit each step as a batch writes them.
func TestIPEntryOpCommitsAsLeaves(t *testing.T) {
	ctx := context.Background()
	leafSt, entrySt := openStore(t, t.TempDir()), openStore(t, t.TempDir())
	defer leafSt.Close()
	defer entrySt.Close()
	for _, st := range []*store.Store{leafSt, entrySt} {
		var base []store.Op
		for _, e := range []aft.Entry{
			{Kind: aft.KindNextHop, NH: aft.NextHop{Index: 1, IP: netip.MustParseAddr("192.0.2.1")}, Meta: aft.Meta{Session: "s-1"}},
			{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 1, Members: []aft.Member{{Index: 1}}}, Meta: aft.Meta{Session: "s-1"}},
			{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 2, Members: []aft.Member{{Index: 1}}}, Meta: aft.Meta{Session: "s-1"}},
		} {
			base = entryOps(nil, base, &e, false)
		}
		if _, err := st.Commit(ctx, base); err != nil {
			t.Fatal(err)
		}
	}
	prefixes := []string{"198.51.100.0/24", "198.51.100.7/32", "2001:db8::/64", "2001:db8:1::1/128"}
	steps := []struct {
		nhg     uint64
		session string
		meta    []byte
		existed bool
	}{
		{1, "s-1", nil, false},
		{1, "s-1", []byte{1, 2, 3}, true},
		{2, "s-2", []byte{4}, true},
		{2, "s-2", nil, true}, // the metadata deleted
		{1, "s-1", nil, true}, // nothing to delete
	}
	for i, s := range steps {
		var lops, eops []store.Op
		var lw leafWrites
		for j, p := range prefixes {
			pfx := netip.MustParsePrefix(p)
			kind := aft.KindIPv4
			if pfx.Addr().Is6() {
				kind = aft.KindIPv6
			}
			// Runs of entries with the same group and session, and
			// changes between them, as the shared values meet them.
			nhg, sess := s.nhg, s.session
			if j == len(prefixes)-1 {
				nhg, sess = 3-nhg, sess+"x"
			}
			e := aft.Entry{Kind: kind, IP: aft.IPEntry{Prefix: pfx, NHG: nhg, Metadata: s.meta}, Meta: aft.Meta{Session: sess}}
			lops = append(lops, leafOps(&e, s.existed)...)
			eops = entryOps(&lw, eops, &e, s.existed)
		}
		if len(eops) != len(prefixes) {
			t.Fatalf("step %d: %d operations for %d entries, want one each", i, len(eops), len(prefixes))
		}
		lc, err := leafSt.Commit(ctx, lops)
		if err != nil {
			t.Fatalf("step %d: per-leaf: %v", i, err)
		}
		ec, err := entrySt.Commit(ctx, eops)
		if err != nil {
			t.Fatalf("step %d: entry operations: %v", i, err)
		}
		if d := cmp.Diff(changeList(lc), changeList(ec)); d != "" {
			t.Errorf("step %d (%+v): entry operations changed the tree otherwise (-per leaf +entry):\n%s", i, s, d)
		}
		if i == 0 && len(ec.Changes) == 0 {
			t.Fatalf("step 0 changed nothing")
		}
	}
}

func changeList(c *store.Commit) []string {
	var out []string
	for _, ch := range c.Changes {
		out = append(out, fmt.Sprintf("%d %s %q %q", ch.Op, ch.Path(), ch.Val.String(), ch.Old.String()))
	}
	return out
}

// TestEntryKeyMatchesStore: the key an IP entry's operation takes from
// the writer's chunks (its family's shape with the prefix) is the one
// store.EntryKeyOf makes of the entry's EntryRef, for both families and
// past the end of a chunk.
func TestEntryKeyMatchesStore(t *testing.T) {
	var lw leafWrites
	a4, a6 := netip.MustParseAddr("198.51.100.0"), netip.MustParseAddr("2001:db8::")
	for i := range keyChunk + 2 {
		for _, p := range []netip.Prefix{netip.PrefixFrom(a4, 24+i%9), netip.PrefixFrom(a6, 64+i%65)} {
			p = p.Masked()
			sh, r := &ipv4Shape, aftPath.Ipv4Entries().Ipv4EntryRef(p.String())
			if p.Addr().Is6() {
				sh, r = &ipv6Shape, aftPath.Ipv6Entries().Ipv6EntryRef(p.String())
			}
			if d := cmp.Diff(store.EntryKeyOf(&r), lw.key(sh, p), cmp.Comparer(func(x, y tree.Value) bool { return x.Equal(y) }), protocmp.Transform()); d != "" {
				t.Fatalf("key of %s (-store +writer):\n%s", p, d)
			}
		}
		a4, a6 = a4.Next(), a6.Next()
	}
}
