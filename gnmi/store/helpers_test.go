package store

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func testSchema(t testing.TB) *tree.Schema {
	t.Helper()
	s, err := tree.LoadModules(nil, []string{filepath.Join("..", "tree", "testdata", "kedge-test.yang")}, []string{"kedge-test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func path(t testing.TB, s string) []*gpb.PathElem {
	t.Helper()
	e, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func str(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func js(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func upd(t testing.TB, p string, v *gpb.TypedValue) Op {
	return Op{Kind: OpUpdate, Path: path(t, p), Val: v}
}

func del(t testing.TB, p string) Op { return Op{Kind: OpDelete, Path: path(t, p)} }

func mustCommit(t testing.TB, s *Store, ops ...Op) *Commit {
	t.Helper()
	c, err := s.Commit(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dump renders every set leaf, sorted: the ground truth for comparisons.
func dump(s *Store) string {
	var lines []string
	_ = s.Read(func(t *tree.Tree) error {
		return tree.Match{In: t.Root()}.Leaves(nil, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
			lines = append(lines, tree.Match{In: in, Node: n}.Path()+"="+v.String())
			return nil
		})
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func route(i int) string {
	return "/top/routes/route[prefix=10." + itoa(i/65536%256) + "." + itoa(i/256%256) + "." + itoa(i%256) + "/32][table=254]"
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{digits[i%10]}, b...)
		i /= 10
	}
	return string(b)
}
