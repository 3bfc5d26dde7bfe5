package gribi

import (
	"encoding/base64"
	"fmt"
	"net/netip"

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

// entryOps are the operations that make the tree hold e, replacing
// whatever the entry held before (existed): optional leaves e lacks are
// then deleted. A new entry needs no deletes, which at 100,000 entries
// is a lookup each saved.
func entryOps(ops []store.Op, e *aft.Entry, existed bool) []store.Op {
	switch e.Kind {
	case aft.KindNextHop:
		c := aftPath.NextHops().NextHop(e.NH.Index).Config()
		ops = append(ops, store.Update(c.Index(), e.NH.Index), store.Update(c.Session(), e.Meta.Session))
		if e.NH.IP.IsValid() {
			ops = append(ops, store.Update(c.IpAddress(), e.NH.IP.String()))
		} else if existed {
			ops = append(ops, store.Delete(c.IpAddress()))
		}
		if e.NH.Interface != "" {
			ops = append(ops, store.Update(c.Interface(), e.NH.Interface))
		} else if existed {
			ops = append(ops, store.Delete(c.Interface()))
		}
		if e.NH.Unsupported != "" {
			ops = append(ops, store.Update(c.Unsupported(), e.NH.Unsupported))
		} else if existed {
			ops = append(ops, store.Delete(c.Unsupported()))
		}
	case aft.KindNextHopGroup:
		g := aftPath.NextHopGroups().NextHopGroup(e.NHG.ID)
		c := g.Config()
		ops = append(ops, store.Update(c.Id(), e.NHG.ID), store.Update(c.Session(), e.Meta.Session))
		if existed {
			ops = append(ops, store.Delete(g.NextHops()))
		}
		if e.NHG.Backup != 0 {
			ops = append(ops, store.Update(c.BackupNextHopGroup(), e.NHG.Backup))
		} else if existed {
			ops = append(ops, store.Delete(c.BackupNextHopGroup()))
		}
		for _, m := range e.NHG.Members {
			mc := g.NextHops().NextHop(m.Index).Config()
			ops = append(ops, store.Update(mc.Index(), m.Index))
			if m.Weight != 0 {
				ops = append(ops, store.Update(mc.Weight(), m.Weight))
			}
		}
	case aft.KindIPv4:
		c := aftPath.Ipv4Entries().Ipv4Entry(e.IP.Prefix.String()).Config()
		ops = append(ops, store.Update(c.Prefix(), e.IP.Prefix.String()), store.Update(c.NextHopGroup(), e.IP.NHG),
			store.Update(c.Session(), e.Meta.Session))
		if len(e.IP.Metadata) > 0 {
			ops = append(ops, store.Update(c.Metadata(), base64.StdEncoding.EncodeToString(e.IP.Metadata)))
		} else if existed {
			ops = append(ops, store.Delete(c.Metadata()))
		}
	case aft.KindIPv6:
		c := aftPath.Ipv6Entries().Ipv6Entry(e.IP.Prefix.String()).Config()
		ops = append(ops, store.Update(c.Prefix(), e.IP.Prefix.String()), store.Update(c.NextHopGroup(), e.IP.NHG),
			store.Update(c.Session(), e.Meta.Session))
		if len(e.IP.Metadata) > 0 {
			ops = append(ops, store.Update(c.Metadata(), base64.StdEncoding.EncodeToString(e.IP.Metadata)))
		} else if existed {
			ops = append(ops, store.Delete(c.Metadata()))
		}
	}
	return ops
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
