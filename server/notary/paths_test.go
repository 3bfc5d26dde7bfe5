package notary

import (
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// The recorded paths are Change.Path's, for leaves of the root's
// children, of containers, of list entries with escaped keys, and for
// instances met again after others.
func TestChangePathsAreChangePath(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(schema)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	aft := kedgepath.Root().Kedge().Aft()
	sess := aft.Sessions().Session(`s]1\x`).Config()
	set := func(p interface{ Elems() []*gpb.PathElem }, v *gpb.TypedValue) {
		t.Helper()
		if err := tx.Update(p.Elems(), v); err != nil {
			t.Fatal(err)
		}
	}
	set(sess.Id(), sess.Id().Val(`s]1\x`))
	set(sess.Identity(), sess.Identity().Val("who"))
	for _, p := range []string{"10.0.0.1/32", "10.0.0.2/32"} {
		c := aft.Ipv4Entries().Ipv4Entry(p).Config()
		set(c.Prefix(), c.Prefix().Val(p))
		set(c.NextHopGroup(), c.NextHopGroup().Val(1))
	}
	set(sess.Tier(), sess.Tier().Val(kedgepath.Tier("operator")))
	nh := aft.NextHops().NextHop(3).Config()
	set(nh.Index(), nh.Index().Val(3))
	changes := tx.Changes()
	if len(changes) < 10 {
		t.Fatalf("%d changes, want at least 10", len(changes))
	}
	var c changePaths
	for _, ch := range changes {
		if got, want := c.leaf(ch), ch.Path(); got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
	tx.Rollback()
}
