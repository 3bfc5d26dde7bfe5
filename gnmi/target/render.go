package target

import (
	"sync"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// renderCache renders each commit's changes into gNMI paths and updates
// once, however many subscribers stream it: with 100 subscribers the
// per-change protobuf building would otherwise dominate. Rendered
// messages are shared read-only between streams.
type renderCache struct {
	mu    sync.Mutex
	slots [256]*rendered
}

type rendered struct {
	seq   uint64
	c     *store.Commit
	once  sync.Once
	paths []*gpb.Path
	mu    sync.Mutex
	upd   map[gpb.Encoding][]*gpb.Update
	enc   map[string]*encodedNotif
}

// encodedNotif is one commit's notification for one subscription
// signature, marshalled once.
type encodedNotif struct {
	once sync.Once
	msg  *preEncoded // nil when the commit selects nothing
	err  error
}

// encoded returns the commit's notification for the signature, built and
// marshalled by the first stream that asks.
func (r *rendered) encoded(sig string, build func() *gpb.SubscribeResponse) (*preEncoded, error) {
	r.mu.Lock()
	if r.enc == nil {
		r.enc = map[string]*encodedNotif{}
	}
	e := r.enc[sig]
	if e == nil {
		e = &encodedNotif{}
		r.enc[sig] = e
	}
	r.mu.Unlock()
	e.once.Do(func() {
		resp := build()
		if resp == nil {
			return
		}
		b, err := proto.Marshal(resp)
		e.msg, e.err = &preEncoded{b: b}, err
	})
	return e.msg, e.err
}

func (rc *renderCache) get(c *store.Commit) *rendered {
	rc.mu.Lock()
	i := c.Seq % uint64(len(rc.slots))
	r := rc.slots[i]
	if r == nil || r.seq != c.Seq || r.c != c {
		r = &rendered{seq: c.Seq, c: c}
		rc.slots[i] = r
	}
	rc.mu.Unlock()
	r.once.Do(func() {
		r.paths = make([]*gpb.Path, len(c.Changes))
		// Changes of one instance are consecutive: render its elements once.
		var last tree.Ident
		var base []*gpb.PathElem
		for i, ch := range c.Changes {
			if ch.In != last {
				last, base = ch.In, ch.In.Elems()
			}
			elems := make([]*gpb.PathElem, len(base)+1)
			copy(elems, base)
			elems[len(base)] = &gpb.PathElem{Name: ch.Node.Name}
			r.paths[i] = &gpb.Path{Elem: elems}
		}
	})
	return r
}

// updates returns one shared Update per change (nil for deletes) in the
// given encoding.
func (r *rendered) updates(enc gpb.Encoding) []*gpb.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.upd[enc]; ok {
		return u
	}
	if r.upd == nil {
		r.upd = map[gpb.Encoding][]*gpb.Update{}
	}
	e := encoder{enc: enc}
	u := make([]*gpb.Update, len(r.c.Changes))
	for i, ch := range r.c.Changes {
		if ch.Op == tree.OpUpdate {
			u[i] = &gpb.Update{Path: r.paths[i], Val: e.leafValue(ch.Node, ch.Val)}
		}
	}
	r.upd[enc] = u
	return u
}
