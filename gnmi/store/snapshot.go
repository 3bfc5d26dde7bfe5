package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A snapshot is stored in tree.db as its encoded record split into
// chunks (bucket "snapshot", keys 0, 1, ...), the metas as of the
// snapshot (bucket "meta", keys "x/<name>") and a manifest (bucket
// "meta", key "snapshot-manifest"). Every chunk and meta value ends in a
// CRC-32C of its key and value, and the manifest, itself checksummed,
// holds the sequence number, the first log segment the snapshot does not
// cover, the chunk count, the whole record's length and CRC-32C and the
// number of metas: one changed, missing or extra byte anywhere is
// refused on open rather than restored.
//
// Snapshots written before the manifest (keys "snapshot-seq" and
// "wal-first", no checksums) are still read; the store rewrites them in
// this layout right after opening.

var (
	keyManifest = []byte("snapshot-manifest")
	// The layout before the manifest.
	keySnapSeq  = []byte("snapshot-seq")
	keyWALFirst = []byte("wal-first")
)

const (
	manifestVersion = 2
	manifestSize    = 1 + 8 + 8 + 4 + 8 + 4 + 4 + 4
	metaPrefix      = "x/"
)

// snapshot is what tree.db holds.
type snapshot struct {
	present bool
	legacy  bool // written before checksums
	seq     uint64
	first   uint64 // the first log segment the snapshot does not cover
	blob    []byte
	metas   map[string][]byte
}

// sealed appends the CRC-32C of key and val to val.
func sealed(key, val []byte) []byte {
	out := make([]byte, 0, len(val)+4)
	out = append(out, val...)
	return binary.LittleEndian.AppendUint32(out, crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, val))
}

// unseal checks and strips the CRC-32C that sealed added.
func unseal(key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("value of %q is %d bytes, too short for its checksum", key, len(v))
	}
	val := v[:len(v)-4]
	if crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, val) != binary.LittleEndian.Uint32(v[len(v)-4:]) {
		return nil, fmt.Errorf("value of %q: checksum mismatch", key)
	}
	return val, nil
}

func encodeManifest(seq, first uint64, chunks uint32, blob []byte, metas uint32) []byte {
	b := make([]byte, 0, manifestSize)
	b = append(b, manifestVersion)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint64(b, first)
	b = binary.LittleEndian.AppendUint32(b, chunks)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(blob)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(blob, castagnoli))
	b = binary.LittleEndian.AppendUint32(b, metas)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// writeSnapshot replaces tree.db's snapshot and metas in btx.
func writeSnapshot(btx *bolt.Tx, blob []byte, seq, first uint64, metas map[string][]byte) error {
	meta := btx.Bucket(bucketMeta)
	var old [][]byte
	c := meta.Cursor()
	for k, _ := c.Seek([]byte(metaPrefix)); k != nil && strings.HasPrefix(string(k), metaPrefix); k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range append(old, keySnapSeq, keyWALFirst) {
		if err := meta.Delete(k); err != nil {
			return err
		}
	}
	for k, v := range metas {
		key := []byte(metaPrefix + k)
		if err := meta.Put(key, sealed(key, v)); err != nil {
			return err
		}
	}
	if err := btx.DeleteBucket(bucketSnap); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	b, err := btx.CreateBucket(bucketSnap)
	if err != nil {
		return err
	}
	b.FillPercent = 1
	chunks := uint32(0)
	for rest := blob; len(rest) > 0; chunks++ {
		n := min(len(rest), snapshotChunk)
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], uint64(chunks))
		if err := b.Put(k[:], sealed(k[:], rest[:n])); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return meta.Put(keyManifest, encodeManifest(seq, first, chunks, blob, uint32(len(metas))))
}

// storedSeq returns the sequence number of the checksummed snapshot in
// btx, if there is one.
func storedSeq(btx *bolt.Tx) (uint64, bool) {
	m := btx.Bucket(bucketMeta).Get(keyManifest)
	if len(m) != manifestSize || crc32.Checksum(m[:manifestSize-4], castagnoli) != binary.LittleEndian.Uint32(m[manifestSize-4:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(m[1:]), true
}

// readSnapshot reads and verifies the snapshot and metas in btx. A
// damaged one is an error saying what is wrong.
func readSnapshot(btx *bolt.Tx) (snapshot, error) {
	sn := snapshot{metas: map[string][]byte{}}
	meta, snap := btx.Bucket(bucketMeta), btx.Bucket(bucketSnap)
	if meta == nil {
		return sn, nil // a store that never committed a bbolt transaction
	}
	m := meta.Get(keyManifest)
	if m == nil {
		return readLegacySnapshot(meta, snap)
	}
	if len(m) != manifestSize || crc32.Checksum(m[:manifestSize-4], castagnoli) != binary.LittleEndian.Uint32(m[manifestSize-4:]) {
		return sn, errors.New("snapshot manifest: checksum mismatch")
	}
	if m[0] != manifestVersion {
		return sn, fmt.Errorf("snapshot manifest: version %d, this build reads %d", m[0], manifestVersion)
	}
	sn.present = true
	sn.seq = binary.LittleEndian.Uint64(m[1:])
	sn.first = binary.LittleEndian.Uint64(m[9:])
	chunks := binary.LittleEndian.Uint32(m[17:])
	length := binary.LittleEndian.Uint64(m[21:])
	sum := binary.LittleEndian.Uint32(m[29:])
	metas := binary.LittleEndian.Uint32(m[33:])
	if snap == nil {
		return sn, errors.New("snapshot bucket missing")
	}
	sn.blob = make([]byte, 0, length)
	n := uint32(0)
	c := snap.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(n) {
			return sn, fmt.Errorf("snapshot chunk %d: found key %x", n, k)
		}
		val, err := unseal(k, v)
		if err != nil {
			return sn, fmt.Errorf("snapshot chunk %d: %w", n, err)
		}
		sn.blob = append(sn.blob, val...)
		n++
	}
	if n != chunks || uint64(len(sn.blob)) != length || crc32.Checksum(sn.blob, castagnoli) != sum {
		return sn, fmt.Errorf("snapshot: %d chunks of %d bytes in all, the manifest says %d chunks of %d bytes (or their checksum differs)",
			n, len(sn.blob), chunks, length)
	}
	mc := meta.Cursor()
	for k, v := mc.Seek([]byte(metaPrefix)); k != nil && bytes.HasPrefix(k, []byte(metaPrefix)); k, v = mc.Next() {
		val, err := unseal(k, v)
		if err != nil {
			return sn, fmt.Errorf("meta: %w", err)
		}
		sn.metas[string(k[len(metaPrefix):])] = append([]byte(nil), val...)
	}
	if uint32(len(sn.metas)) != metas {
		return sn, fmt.Errorf("snapshot: %d metas, the manifest says %d", len(sn.metas), metas)
	}
	return sn, nil
}

// readLegacySnapshot reads a snapshot written before the manifest.
func readLegacySnapshot(meta, snap *bolt.Bucket) (snapshot, error) {
	sn := snapshot{metas: map[string][]byte{}, legacy: true}
	if v := meta.Get(keyWALFirst); len(v) == 8 {
		sn.first = binary.BigEndian.Uint64(v)
	}
	mc := meta.Cursor()
	for k, v := mc.Seek([]byte(metaPrefix)); k != nil && bytes.HasPrefix(k, []byte(metaPrefix)); k, v = mc.Next() {
		sn.metas[string(k[len(metaPrefix):])] = append([]byte(nil), v...)
	}
	v := meta.Get(keySnapSeq)
	if len(v) != 8 {
		if snap != nil {
			if k, _ := snap.Cursor().First(); k != nil {
				return sn, errors.New("snapshot chunks without a manifest or sequence number")
			}
		}
		sn.legacy = sn.first != 0 || len(sn.metas) > 0
		return sn, nil
	}
	sn.present = true
	sn.seq = binary.BigEndian.Uint64(v)
	if snap != nil {
		c := snap.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sn.blob = append(sn.blob, v...)
		}
	}
	return sn, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
