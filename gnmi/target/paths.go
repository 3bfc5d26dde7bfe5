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

// elemsOf returns a path's elements. Old clients send the deprecated
// string element field instead of elem; gnmi_cli v0.14.1 fills both from
// one query string. Both are accepted when they name the same path, and
// a path whose two forms disagree is refused rather than guessed at.
//
//lint:file-ignore SA1019 the deprecated element field is read on purpose, for old clients
func elemsOf(p *gpb.Path) ([]*gpb.PathElem, error) {
	if len(p.GetElement()) == 0 {
		return p.GetElem(), nil
	}
	old, err := tree.ParsePath("/" + strings.Join(p.GetElement(), "/"))
	if err != nil {
		return nil, fmt.Errorf("deprecated element path: %w", err)
	}
	if len(p.GetElem()) == 0 {
		return old, nil
	}
	if !sameElems(p.GetElem(), old) {
		return nil, fmt.Errorf("path elem %s and deprecated element %s disagree (send elem only)",
			pathString(p.GetElem()), pathString(old))
	}
	return p.GetElem(), nil
}

// sameElems reports whether two element lists name the same path.
func sameElems(a, b []*gpb.PathElem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetName() != b[i].GetName() || len(a[i].GetKey()) != len(b[i].GetKey()) {
			return false
		}
		for k, v := range a[i].GetKey() {
			if w, ok := b[i].GetKey()[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}
