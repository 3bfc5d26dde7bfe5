// Package tree is a stand-in for gnmi/tree with the API walkcheck knows.
package tree

type Value struct{}

type Inst struct{}

func (*Inst) Sub(string) *Inst                  { return nil }
func (*Inst) Get(string) Value                  { return Value{} }
func (*Inst) Entries(string, func(*Inst) bool)  {}
func (*Inst) Len(string) int                    { return 0 }
func (*Inst) SubAt(*Node) *Inst                 { return nil }
func (*Inst) Leaf(*Node) Value                  { return Value{} }
func (*Inst) EntriesAt(*Node, func(*Inst) bool) {}

type Node struct {
	Name, Path string
}

func (*Node) Child(string) *Node { return nil }

type Schema struct{}

func (*Schema) Find(string) *Node { return nil }

type Tree struct{}

func (*Tree) Root() *Inst { return nil }

func ParsePath(string) ([]int, error) { return nil, nil }

// Inside gnmi/tree the walks are the implementation, not a violation.
func walkHere(in *Inst) *Inst { return in.Sub("kedge") }
