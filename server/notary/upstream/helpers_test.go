package upstream

import (
	"bytes"
	"hash/crc32"
	"strings"
)

func indexOf(b, sub []byte) int { return bytes.Index(b, sub) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// crc is the ledger's frame CRC of an entry frame (type 3, then payload).
func crc(payload []byte) uint32 {
	t := crc32.MakeTable(crc32.Castagnoli)
	c := crc32.Update(0, t, []byte{3})
	return crc32.Update(c, t, payload)
}
