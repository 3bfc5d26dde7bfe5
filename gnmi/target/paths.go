package target

import (
	"fmt"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// origin is the one origin Kedge serves; "" means the same.
const origin = "kedge"

// fullPath joins a request prefix and a path into data path elements,
// rejecting other origins and the deprecated string elements. Module
// qualifiers on element names ("kedge:kedge") are accepted by the tree.
func fullPath(prefix, p *gpb.Path) ([]*gpb.PathElem, error) {
	for _, x := range []*gpb.Path{prefix, p} {
		if x == nil {
			continue
		}
		if o := x.GetOrigin(); o != "" && o != origin {
			return nil, fmt.Errorf("origin %q is not served (use \"\" or %q)", o, origin)
		}
	}
	if prefix.GetOrigin() != "" && p.GetOrigin() != "" && prefix.GetOrigin() != p.GetOrigin() {
		return nil, fmt.Errorf("prefix and path disagree on origin")
	}
	pe, err := elemsOf(prefix)
	if err != nil {
		return nil, err
	}
	e, err := elemsOf(p)
	if err != nil {
		return nil, err
	}
	elems := make([]*gpb.PathElem, 0, len(pe)+len(e))
	elems = append(elems, pe...)
	elems = append(elems, e...)
	for _, e := range elems {
		if e.GetName() == "" {
			return nil, fmt.Errorf("path has an empty element")
		}
	}
	return elems, nil
}

// hasWildcard reports whether a path uses "*", "..." or wildcard keys.
func hasWildcard(elems []*gpb.PathElem) bool {
	for _, e := range elems {
		if e.GetName() == "*" || e.GetName() == "..." {
			return true
		}
		for _, v := range e.GetKey() {
			if v == "*" {
				return true
			}
		}
	}
	return false
}

// stripModule drops an RFC 7951 module qualifier from an element name.
func stripModule(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// pathString renders elements for messages.
func pathString(elems []*gpb.PathElem) string { return tree.RenderPath(elems) }

// elemsOf returns a path's elements, converting the deprecated string
// element field (still sent by gnmi_cli -q) when elem is empty.
//
//lint:file-ignore SA1019 the deprecated element field is read on purpose, for old clients
func elemsOf(p *gpb.Path) ([]*gpb.PathElem, error) {
	if len(p.GetElem()) > 0 || len(p.GetElement()) == 0 {
		if len(p.GetElem()) > 0 && len(p.GetElement()) > 0 {
			return nil, fmt.Errorf("path sets both elem and the deprecated element")
		}
		return p.GetElem(), nil
	}
	elems, err := tree.ParsePath("/" + strings.Join(p.GetElement(), "/"))
	if err != nil {
		return nil, fmt.Errorf("deprecated element path: %w", err)
	}
	return elems, nil
}
