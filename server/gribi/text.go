package gribi

import (
	"net/netip"
	"strings"
)

// prefixText writes the text of many prefixes into shared chunks: a
// string of a Builder's bytes stays as it is while the Builder appends,
// so the text of 200 prefixes is one allocation, not 200. The writer's
// keys take theirs from it (the tree keeps the keys, and with them the
// chunk, as it kept the strings before), and so do the FIB
// acknowledgements' lookups (the chunks are garbage once they are done).
type prefixText struct{ b strings.Builder }

// textChunk is how many bytes of prefix text a chunk holds.
const textChunk = 4096

// text returns p as text.
func (pt *prefixText) text(p netip.Prefix) string {
	// The longest prefix text: an IPv6 address, '/' and 128.
	const most = 39 + 4
	if pt.b.Cap()-pt.b.Len() < most {
		pt.b = strings.Builder{}
		pt.b.Grow(textChunk)
	}
	var buf [most]byte
	at := pt.b.Len()
	pt.b.Write(p.AppendTo(buf[:0]))
	return pt.b.String()[at:]
}
