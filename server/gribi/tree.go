package gribi

import (
	"encoding/base64"
	"fmt"
	"net/netip"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// aftPath is /kedge/aft.
var aftPath = kedgepath.Root().Kedge().Aft()

// sessionRecord is a /kedge/aft/sessions entry: what applies to the
// entries a session wrote.
type sessionRecord struct {
	ID, Identity string
	Preserve     bool
	Tier, Class  string
}

func (r sessionRecord) ops() []store.Op {
	c := aftPath.Sessions().Session(r.ID).Config()
	p := kedgepath.PersistenceDelete
	if r.Preserve {
		p = kedgepath.PersistencePreserve
	}
	return []store.Op{
		store.Update(c.Id(), r.ID),
		store.Update(c.Identity(), r.Identity),
		store.Update(c.Persistence(), p),
		store.Update(c.Tier(), kedgepath.Tier(r.Tier)),
		store.Update(c.Class(), kedgepath.RouteClass(r.Class)),
	}
}

// entryOps appends the operation that makes the tree hold e, replacing
// whatever the entry held before (existed): optional leaves e lacks are
// then deleted. A new entry needs no deletes, which at 100,000 entries
// is a lookup each saved. It is one operation per entry (store.Entry),
// so the tree finds the entry once for its leaves, not once per leaf.
// An IP entry's operation takes its key, leaf writes and shared values
// from lw (nil: its own), see ipEntryOp.
func entryOps(lw *leafWrites, ops []store.Op, e *aft.Entry, existed bool) []store.Op {
	switch e.Kind {
	case aft.KindNextHop:
		return nextHopOps(ops, e, existed)
	case aft.KindNextHopGroup:
		return groupOps(ops, e, existed)
	}
	if lw == nil {
		lw = &leafWrites{}
	}
	switch e.Kind {
	case aft.KindIPv4:
		return append(ops, ipEntryOp(lw, &ipv4Shape, ipv4Config, e, existed))
	case aft.KindIPv6:
		return append(ops, ipEntryOp(lw, &ipv6Shape, ipv6Config, e, existed))
	}
	return ops
}

// nextHopOps is entryOps for a next hop. (Apart from the IP entries' so
// that their hot path does not clear the leaf buffer.)
func nextHopOps(ops []store.Op, e *aft.Entry, existed bool) []store.Op {
	var buf [8]store.LeafWrite
	p := aftPath.NextHops().NextHop(e.NH.Index)
	c := p.Config()
	ls := append(buf[:0], store.Set(c.Index(), e.NH.Index), store.Set(c.Session(), e.Meta.Session))
	if e.NH.IP.IsValid() {
		ls = append(ls, store.Set(c.IpAddress(), e.NH.IP.String()))
	} else if existed {
		ls = append(ls, store.Unset(c.IpAddress()))
	}
	if e.NH.Interface != "" {
		ls = append(ls, store.Set(c.Interface(), e.NH.Interface))
	} else if existed {
		ls = append(ls, store.Unset(c.Interface()))
	}
	if e.NH.Unsupported != "" {
		ls = append(ls, store.Set(c.Unsupported(), e.NH.Unsupported))
	} else if existed {
		ls = append(ls, store.Unset(c.Unsupported()))
	}
	return append(ops, store.Entry(p, ls...))
}

// groupOps is entryOps for a next-hop group.
func groupOps(ops []store.Op, e *aft.Entry, existed bool) []store.Op {
	var buf [8]store.LeafWrite
	g := aftPath.NextHopGroups().NextHopGroup(e.NHG.ID)
	c := g.Config()
	ls := append(buf[:0], store.Set(c.Id(), e.NHG.ID), store.Set(c.Session(), e.Meta.Session))
	if e.NHG.Backup != 0 {
		ls = append(ls, store.Set(c.BackupNextHopGroup(), e.NHG.Backup))
	} else if existed {
		ls = append(ls, store.Unset(c.BackupNextHopGroup()))
	}
	ops = append(ops, store.Entry(g, ls...))
	// The members are entries of a list of their own, written as
	// before: a group has few, and there are few groups.
	if existed {
		ops = append(ops, store.Delete(g.NextHops()))
	}
	for _, m := range e.NHG.Members {
		mp := g.NextHops().NextHop(m.Index)
		mc := mp.Config()
		ls = append(ls[:0], store.Set(mc.Index(), m.Index))
		if m.Weight != 0 {
			ls = append(ls, store.Set(mc.Weight(), m.Weight))
		}
		ops = append(ops, store.Entry(mp, ls...))
	}
	return ops
}

// The config containers of IP entries relative to the entry, whose leaves
// an IP entry's Keyed operation writes.
var (
	ipv4Config = aftPath.Ipv4Entries().Ipv4EntryBelow().Config()
	ipv6Config = aftPath.Ipv6Entries().Ipv6EntryBelow().Config()
)

// ipShape is what the operations of every IP entry of a family share:
// the entry's key but for its prefix (the list and where it is), and the
// paths of the leaves written. Each is the same for all entries, and
// building them again for each entry was two thirds of what an entry's
// operation cost (BenchmarkEntryOps).
type ipShape struct {
	key                    tree.EntryKey // Keys nil: the prefix is the entry's own
	nhg, sess, md          []*gpb.PathElem
	nhgRel, sessRel, mdRel bool
}

var (
	ipv4Shape = shapeOf(aftPath.Ipv4Entries().Ipv4EntryRef(""), ipv4Config)
	ipv6Shape = shapeOf(aftPath.Ipv6Entries().Ipv6EntryRef(""), ipv6Config)
)

func shapeOf[C ipConfig[N, M, S], N store.SplitLeaf[uint64], M store.SplitLeaf[string], S store.SplitLeaf[string]](
	r kedgepath.EntryRef, c C) ipShape {
	var s ipShape
	s.key = *store.EntryKeyOf(&r)
	s.key.Keys = nil
	s.nhg, s.nhgRel = store.KeyedLeafPath(c.NextHopGroup())
	s.sess, s.sessRel = store.KeyedLeafPath(c.Session())
	s.md, s.mdRel = store.KeyedLeafPath(c.Metadata())
	return s
}

// ipConfig is the config container of an IPv4 or an IPv6 entry, whose
// leaves have the same names and types.
type ipConfig[N, M, S store.SplitPath] interface {
	NextHopGroup() N
	Metadata() M
	Session() S
}

// ipEntryOp is the operation writing IP entry e, of the family whose
// shape is sh and config container (relative to the entry) c: what
// store.Keyed(its EntryRef, Set group, Set session, Set or Unset
// metadata) is, which TestIPEntryOpCommitsAsLeaves holds it to. A bulk
// load writes 100,000 of them, so what each costs counts: the entry is
// named by its key, sh's with the prefix, not a path with a key map; the
// prefix leaf is not written (it mirrors the list key, which the tree
// sets when it creates the entry and which an existing entry holds
// already); the key and the leaf writes come from lw's chunks, and the
// group and session values are shared with the entries written before
// it (nearly all of a load's are the same).
// (c is a type parameter rather than an interface, so it is not boxed.)
func ipEntryOp[C ipConfig[N, M, S], N store.SplitLeaf[uint64], M store.SplitLeaf[string], S store.SplitLeaf[string]](
	lw *leafWrites, sh *ipShape, c C, e *aft.Entry, existed bool) store.Op {
	n := 2
	if len(e.IP.Metadata) > 0 || existed {
		n = 3
	}
	ws := lw.Take(n)
	ws[0].Path, ws[0].Relative = sh.nhg, sh.nhgRel
	if lw.nhgVal == nil || lw.nhg != e.IP.NHG {
		lw.nhg, lw.nhgVal = e.IP.NHG, c.NextHopGroup().Val(e.IP.NHG)
	}
	ws[0].Val = lw.nhgVal
	ws[1].Path, ws[1].Relative = sh.sess, sh.sessRel
	if lw.sessVal == nil || lw.sess != e.Meta.Session {
		lw.sess, lw.sessVal = e.Meta.Session, c.Session().Val(e.Meta.Session)
	}
	ws[1].Val = lw.sessVal
	if n == 3 {
		ws[2].Path, ws[2].Relative = sh.md, sh.mdRel
		if len(e.IP.Metadata) > 0 {
			ws[2].Val = c.Metadata().Val(base64.StdEncoding.EncodeToString(e.IP.Metadata))
		} else {
			ws[2].Delete = true
		}
	}
	return store.Op{Kind: store.OpEntry, Key: lw.key(sh, e.IP.Prefix), Leaves: ws}
}

// leafWrites hands out the keys and leaf writes of one commit's IP entry
// operations from chunks rather than one allocation per entry, and keeps
// the last group and session values, which the entries of a bulk load
// share (the tree decodes a value and keeps none of it).
type leafWrites struct {
	tree.EntryWrites
	keys    []entryKey
	pfx     prefixText
	nhg     uint64
	nhgVal  *gpb.TypedValue
	sess    string
	sessVal *gpb.TypedValue
}

// entryKey is an IP entry's key with its one value.
type entryKey struct {
	k tree.EntryKey
	v [1]tree.Value
}

// keyChunk is how many keys a chunk of leafWrites holds (26 KB).
const keyChunk = 256

// key returns the key of the entry of sh's family with prefix p: what
// store.EntryKeyOf makes of its EntryRef (TestEntryKeyMatchesStore), from
// lw's chunk.
func (lw *leafWrites) key(sh *ipShape, p netip.Prefix) *tree.EntryKey {
	if len(lw.keys) == 0 {
		lw.keys = make([]entryKey, keyChunk)
	}
	k := &lw.keys[0]
	lw.keys = lw.keys[1:]
	k.v[0] = tree.String(lw.pfx.text(p))
	k.k = sh.key
	k.k.Keys = k.v[:]
	return &k.k
}

// deleteOp removes the entry k names.
func deleteOp(k aft.Key) store.Op {
	switch k.Kind {
	case aft.KindNextHop:
		return store.Delete(aftPath.NextHops().NextHop(k.ID))
	case aft.KindNextHopGroup:
		return store.Delete(aftPath.NextHopGroups().NextHopGroup(k.ID))
	case aft.KindIPv4:
		return store.Delete(aftPath.Ipv4Entries().Ipv4Entry(k.Prefix.String()))
	}
	return store.Delete(aftPath.Ipv6Entries().Ipv6Entry(k.Prefix.String()))
}

// stored is what the tree holds of the AFT: its entries in an order the
// RIB can add them in (next hops, groups, IP entries) and the sessions.
type stored struct {
	entries  []aft.Entry
	sessions map[string]sessionRecord
}

// load reads /kedge/aft. An entry the tree holds that cannot be read
// back (which a commit of this package never makes) is an error: the
// daemon must not serve a RIB that differs from what it acknowledged.
func load(t *tree.Tree) (stored, error) {
	s := stored{sessions: map[string]sessionRecord{}}
	a := kedgetree.Of(t).Kedge().Aft()
	if !a.Exists() {
		return s, nil
	}
	for in := range a.Sessions().Session().All() {
		c := in.Config()
		id, _ := c.Id()
		who, _ := c.Identity()
		p, _ := c.Persistence()
		tier, _ := c.Tier()
		class, _ := c.Class()
		s.sessions[id] = sessionRecord{ID: id, Identity: who, Preserve: p == kedgepath.PersistencePreserve,
			Tier: string(tier), Class: string(class)}
	}
	for in := range a.NextHops().NextHop().All() {
		c := in.Config()
		e := aft.Entry{Kind: aft.KindNextHop}
		e.NH.Index, _ = c.Index()
		e.Meta.Session, _ = c.Session()
		if ip, ok := c.IpAddress(); ok {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return s, fmt.Errorf("load next hop %d: %w", e.NH.Index, err)
			}
			e.NH.IP = addr
		}
		e.NH.Interface, _ = c.Interface()
		e.NH.Unsupported, _ = c.Unsupported()
		s.entries = append(s.entries, e)
	}
	for in := range a.NextHopGroups().NextHopGroup().All() {
		c := in.Config()
		e := aft.Entry{Kind: aft.KindNextHopGroup}
		e.NHG.ID, _ = c.Id()
		e.NHG.Backup, _ = c.BackupNextHopGroup()
		e.Meta.Session, _ = c.Session()
		for m := range in.NextHops().NextHop().All() {
			mc := m.Config()
			idx, _ := mc.Index()
			w, _ := mc.Weight()
			e.NHG.Members = append(e.NHG.Members, aft.Member{Index: idx, Weight: w})
		}
		sortMembers(e.NHG.Members)
		s.entries = append(s.entries, e)
	}
	readIP := func(kind aft.Kind, prefix string, nhg uint64, meta string, session string) error {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			return fmt.Errorf("load %s %s: %w", kind, prefix, err)
		}
		e := aft.Entry{Kind: kind, IP: aft.IPEntry{Prefix: p, NHG: nhg}, Meta: aft.Meta{Session: session}}
		if meta != "" {
			if e.IP.Metadata, err = base64.StdEncoding.DecodeString(meta); err != nil {
				return fmt.Errorf("load %s %s metadata: %w", kind, prefix, err)
			}
		}
		s.entries = append(s.entries, e)
		return nil
	}
	for in := range a.Ipv4Entries().Ipv4Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		md, _ := c.Metadata()
		sess, _ := c.Session()
		if err := readIP(aft.KindIPv4, p, nhg, md, sess); err != nil {
			return s, err
		}
	}
	for in := range a.Ipv6Entries().Ipv6Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		md, _ := c.Metadata()
		sess, _ := c.Session()
		if err := readIP(aft.KindIPv6, p, nhg, md, sess); err != nil {
			return s, err
		}
	}
	return s, nil
}
