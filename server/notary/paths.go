package notary

import (
	"strings"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// changePaths renders the paths of a commit's changed leaves as
// tree.Change.Path does, but each instance's path once, from its
// parent's: Change.Path renders the whole path for every leaf, which for
// a gRIBI bulk load's 300,000 leaf changes was half of what recording
// its commits cost.
type changePaths struct {
	paths map[tree.Ident]string
	buf   []byte
}

// leaf returns the path of the leaf ch changed.
func (c *changePaths) leaf(ch tree.Change) string {
	p := c.inst(ch.In)
	if p == "/" {
		return "/" + ch.Node.Name
	}
	return p + "/" + ch.Node.Name
}

func (c *changePaths) inst(x tree.Ident) string {
	if p, ok := c.paths[x]; ok {
		return p
	}
	p := "/"
	if par := x.Parent(); !par.IsZero() {
		pp := strings.TrimSuffix(c.inst(par), "/")
		c.buf = x.AppendElement(append(c.buf[:0], pp...))
		p = string(c.buf)
	}
	if c.paths == nil {
		c.paths = map[tree.Ident]string{}
	}
	if len(c.paths) > 4096 {
		clear(c.paths)
	}
	c.paths[x] = p
	return p
}
