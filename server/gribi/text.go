package gribi

import (
	"net/netip"
	"strings"
)

// prefixText writes the text of many prefixes into shared chunks: a
// string of a Builder's bytes stays as it is while the Builder appends,
// so the text of 200 prefixes is one allocation, not 200. The writer's
// keys take theirs from it, and so do the FIB acknowledgements' lookups
// (whose chunks are garbage once they are done). The tree keeps a key's
// text, so a chunk lives as long as any entry whose key it holds: entries
// deleted while others of their batch stay keep their text's bytes, at
// most the text of the entries written (1.4 MB for 100,000 IPv4 /32s).
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
