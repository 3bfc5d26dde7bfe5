// Package mirror loads what a gNMI target serves into a tree of the
// client's own (gnmi/tree over the same compiled schema), so that a Go
// client such as kedgectl reads a Kedge node with the generated typed
// readers (gen/kedgetree) and writes with the typed paths and values of
// gen/kedgepath: one typed API, generated from yang/, on both sides, and
// the values a client sees are checked by the schema code the daemon runs.
package mirror

import (
	"context"
	"fmt"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Get returns a tree holding the config and the state under path, as the
// target serves them now: two Gets, CONFIG in JSON_IETF and STATE in
// PROTO (leaf by leaf: a state writer may create the entries of config
// lists that exist only in state, like the default accords, but not write
// their config key leaves, which a JSON object would carry). A path
// without data leaves the tree empty there. The two Gets are not one
// snapshot; a client that needs one reads the state it cares about once
// more, or subscribes.
func Get(ctx context.Context, c gpb.GNMIClient, schema *tree.Schema, path *gpb.Path) (*tree.Tree, error) {
	t := tree.New(schema)
	for _, typ := range []gpb.GetRequest_DataType{gpb.GetRequest_CONFIG, gpb.GetRequest_STATE} {
		enc := gpb.Encoding_JSON_IETF
		if typ == gpb.GetRequest_STATE {
			enc = gpb.Encoding_PROTO
		}
		resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{path}, Type: typ, Encoding: enc})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get %v %s: %w", typ, tree.RenderPath(path.GetElem()), err)
		}
		if err := load(t, typ == gpb.GetRequest_STATE, resp.GetNotification()); err != nil {
			return nil, fmt.Errorf("load %v %s: %w", typ, tree.RenderPath(path.GetElem()), err)
		}
	}
	return t, nil
}

// load applies the notifications' updates in one transaction: a config
// one for config data, a state one (which may create entries that exist
// only in state, like the default accords) for state data.
func load(t *tree.Tree, state bool, ns []*gpb.Notification) error {
	tx, err := t.Begin(state)
	if err != nil {
		return err
	}
	tx.OperationalEntries = state
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			elems := append(append([]*gpb.PathElem(nil), n.GetPrefix().GetElem()...), u.GetPath().GetElem()...)
			if state && isKeyLeaf(elems) {
				continue // the entry's path already gave it; a state writer may not write it
			}
			if err := tx.Update(elems, u.GetVal()); err != nil {
				tx.Rollback()
				return err
			}
		}
	}
	if err := tx.Validate(); err != nil {
		tx.Rollback()
		return err
	}
	tx.Commit()
	return nil
}

// isKeyLeaf reports whether elems name a list entry's key leaf: the last
// element's name is a key of the element before it.
func isKeyLeaf(elems []*gpb.PathElem) bool {
	if len(elems) < 2 {
		return false
	}
	_, ok := elems[len(elems)-2].GetKey()[elems[len(elems)-1].GetName()]
	return ok
}
