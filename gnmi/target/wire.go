package target

import (
	"encoding/binary"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// A Get served through the target's codec is written straight into
// protobuf wire bytes, in pooled buffers that gRPC gives back to the pool
// once it has sent them. Built as messages and marshalled, a Get of the
// 2,001 public keys of 1,000 mesh peers made 1.9 MB of garbage (28,000
// objects): ten clients looping it drove the collector many times a
// second, and while its workers and the readers held both processors the
// scheduler found a Set's network events only when sysmon polled, every
// 10 ms. Encoded this way the same Get allocates a few kilobytes.

// Field numbers, read from the gNMI descriptors rather than written out.
var (
	fRespNotification = fieldNum(&gpb.GetResponse{}, "notification")
	fNotifTimestamp   = fieldNum(&gpb.Notification{}, "timestamp")
	fNotifPrefix      = fieldNum(&gpb.Notification{}, "prefix")
	fNotifUpdate      = fieldNum(&gpb.Notification{}, "update")
	fUpdatePath       = fieldNum(&gpb.Update{}, "path")
	fUpdateVal        = fieldNum(&gpb.Update{}, "val")
	fPathElem         = fieldNum(&gpb.Path{}, "elem")
	fPathTarget       = fieldNum(&gpb.Path{}, "target")
	fElemName         = fieldNum(&gpb.PathElem{}, "name")
	fElemKey          = fieldNum(&gpb.PathElem{}, "key")
	fKeyKey           = (&gpb.PathElem{}).ProtoReflect().Descriptor().Fields().ByName("key").MapKey().Number()
	fKeyValue         = (&gpb.PathElem{}).ProtoReflect().Descriptor().Fields().ByName("key").MapValue().Number()
	fValString        = fieldNum(&gpb.TypedValue{}, "string_val")
	fValInt           = fieldNum(&gpb.TypedValue{}, "int_val")
	fValUint          = fieldNum(&gpb.TypedValue{}, "uint_val")
	fValBool          = fieldNum(&gpb.TypedValue{}, "bool_val")
	fValLeaflist      = fieldNum(&gpb.TypedValue{}, "leaflist_val")
	fValJSON          = fieldNum(&gpb.TypedValue{}, "json_val")
	fValJSONIETF      = fieldNum(&gpb.TypedValue{}, "json_ietf_val")
	fArrayElement     = fieldNum(&gpb.ScalarArray{}, "element")
)

func fieldNum(m proto.Message, name protoreflect.Name) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if f == nil {
		panic("gnmi proto has no field " + string(name)) // a gNMI version without it: caught by every test
	}
	return f.Number()
}

// wireChunk is the size of the pooled buffers a response is written into:
// one HTTP/2 frame, a size gRPC's default pool keeps.
const wireChunk = 16 << 10

// wireBuf appends bytes into pooled buffers of wireChunk bytes. A
// message's length must precede it, and a notification's is known only
// once its updates are written: mark starts a new buffer where the header
// goes, and insert puts it there.
type wireBuf struct {
	pool mem.BufferPool
	done mem.BufferSlice
	cur  *[]byte
}

func (w *wireBuf) write(p []byte) {
	for len(p) > 0 {
		if w.cur == nil || len(*w.cur) == cap(*w.cur) {
			w.flush()
			w.cur = w.pool.Get(wireChunk)
			*w.cur = (*w.cur)[:0]
		}
		b := *w.cur
		n := copy(b[len(b):cap(b)], p)
		*w.cur = b[:len(b)+n]
		p = p[n:]
	}
}

// flush ends the current buffer.
func (w *wireBuf) flush() {
	if w.cur == nil {
		return
	}
	if len(*w.cur) == 0 {
		w.pool.Put(w.cur)
	} else {
		w.done = append(w.done, mem.NewBuffer(w.cur, w.pool))
	}
	w.cur = nil
}

// mark ends the current buffer and returns where a header written later
// goes.
func (w *wireBuf) mark() int {
	w.flush()
	return len(w.done)
}

// insert puts hdr before everything written since mark returned at.
func (w *wireBuf) insert(at int, hdr []byte) {
	w.done = append(w.done, nil)
	copy(w.done[at+1:], w.done[at:])
	w.done[at] = mem.SliceBuffer(hdr)
}

// bytes ends the response and hands its buffers over; gRPC frees them.
func (w *wireBuf) bytes() mem.BufferSlice {
	w.flush()
	b := w.done
	w.done = nil
	return b
}

// free gives back everything written (a read that failed).
func (w *wireBuf) free() {
	w.flush()
	w.done.Free()
	w.done = nil
}

// wireSink writes one notification's updates as wire bytes: the path of
// the last instance is kept encoded (a walk goes depth first), a leaf's
// update is built in scratch and copied out.
type wireSink struct {
	enc     encoder
	w       *wireBuf
	path    []wireElem // from the top-level instance down to the last one
	scratch []byte
	val     []byte
	size    int // bytes of this notification's updates
	count   int
}

type wireElem struct {
	id  tree.Ident
	enc []byte // the Path.elem field of this instance
}

// instPath returns the encoded Path.elem fields from the root to the
// instance x names.
func (s *wireSink) instPath(x tree.Ident) []wireElem {
	var buf [tree.MaxPathElems]tree.Ident
	chain := buf[:0]
	for p := x; !p.Parent().IsZero() && len(chain) < len(buf); p = p.Parent() {
		chain = append(chain, p)
	}
	n := len(chain)
	d := 0
	for d < n && d < len(s.path) && s.path[d].id == chain[n-1-d] {
		d++
	}
	s.path = s.path[:d]
	for ; d < n; d++ {
		id := chain[n-1-d]
		var e []byte
		if d < cap(s.path) {
			e = s.path[:d+1][d].enc[:0] // reuse the slot's bytes
		}
		s.path = append(s.path, wireElem{id: id, enc: appendElem(e, id)})
	}
	return s.path
}

// appendElem appends the Path.elem field of one instance: its name and
// its keys in schema order.
func appendElem(b []byte, id tree.Ident) []byte {
	sch := id.Schema()
	keys := id.Keys()
	size := protowire.SizeTag(fElemName) + protowire.SizeBytes(len(sch.Name))
	vals := make([]string, 0, 4)
	for i, k := range sch.Keys {
		v := keys[i].String()
		vals = append(vals, v)
		entry := protowire.SizeTag(fKeyKey) + protowire.SizeBytes(len(k.Name)) + protowire.SizeTag(fKeyValue) + protowire.SizeBytes(len(v))
		size += protowire.SizeTag(fElemKey) + protowire.SizeBytes(entry)
	}
	b = protowire.AppendTag(b, fPathElem, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fElemName, protowire.BytesType)
	b = protowire.AppendString(b, sch.Name)
	for i, k := range sch.Keys {
		entry := protowire.SizeTag(fKeyKey) + protowire.SizeBytes(len(k.Name)) + protowire.SizeTag(fKeyValue) + protowire.SizeBytes(len(vals[i]))
		b = protowire.AppendTag(b, fElemKey, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entry))
		b = protowire.AppendTag(b, fKeyKey, protowire.BytesType)
		b = protowire.AppendString(b, k.Name)
		b = protowire.AppendTag(b, fKeyValue, protowire.BytesType)
		b = protowire.AppendString(b, vals[i])
	}
	return b
}

// leaf writes the update of one leaf.
func (s *wireSink) leaf(in *tree.Inst, n *tree.Node, v tree.Value) error {
	inst := s.instPath(in.Ident())
	s.val = s.enc.appendLeafValue(s.val[:0], n, v)
	leafElem := protowire.SizeTag(fElemName) + protowire.SizeBytes(len(n.Name))
	pathSize := protowire.SizeTag(fPathElem) + protowire.SizeBytes(leafElem)
	for _, e := range inst {
		pathSize += len(e.enc)
	}
	b := s.scratch[:0]
	b = protowire.AppendTag(b, fNotifUpdate, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fUpdatePath)+protowire.SizeBytes(pathSize)+
		protowire.SizeTag(fUpdateVal)+protowire.SizeBytes(len(s.val))))
	b = protowire.AppendTag(b, fUpdatePath, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(pathSize))
	for _, e := range inst {
		b = append(b, e.enc...)
	}
	b = protowire.AppendTag(b, fPathElem, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(leafElem))
	b = protowire.AppendTag(b, fElemName, protowire.BytesType)
	b = protowire.AppendString(b, n.Name)
	b = protowire.AppendTag(b, fUpdateVal, protowire.BytesType)
	b = protowire.AppendBytes(b, s.val)
	s.scratch = b
	s.put(b)
	s.count++
	return nil
}

// update writes a whole-match update (JSON encodings), marshalled as is.
func (s *wireSink) update(u *gpb.Update) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(s.scratch[:0], u)
	if err != nil {
		return err
	}
	s.scratch = b
	var hdr [2 * binary.MaxVarintLen64]byte
	s.put(protowire.AppendVarint(protowire.AppendTag(hdr[:0], fNotifUpdate, protowire.BytesType), uint64(len(b))))
	s.put(b)
	s.count++
	return nil
}

func (s *wireSink) put(b []byte) {
	s.w.write(b)
	s.size += len(b)
}

// notification writes the header of a notification whose updates the
// sink wrote after mark, and resets the sink for the next.
func (s *wireSink) notification(at int, ts int64, target string) {
	body := s.size
	if ts != 0 {
		body += protowire.SizeTag(fNotifTimestamp) + protowire.SizeVarint(uint64(ts))
	}
	prefix := 0
	if target != "" {
		prefix = protowire.SizeTag(fPathTarget) + protowire.SizeBytes(len(target))
		body += protowire.SizeTag(fNotifPrefix) + protowire.SizeBytes(prefix)
	}
	h := protowire.AppendTag(nil, fRespNotification, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(body))
	if ts != 0 {
		h = protowire.AppendTag(h, fNotifTimestamp, protowire.VarintType)
		h = protowire.AppendVarint(h, uint64(ts))
	}
	if target != "" {
		h = protowire.AppendTag(h, fNotifPrefix, protowire.BytesType)
		h = protowire.AppendVarint(h, uint64(prefix))
		h = protowire.AppendTag(h, fPathTarget, protowire.BytesType)
		h = protowire.AppendString(h, target)
	}
	s.w.insert(at, h)
	s.size, s.count = 0, 0
}

// appendLeafValue appends the TypedValue of one leaf, as leafValue
// builds it: scalars for PROTO (tree.Typed), scalar JSON otherwise.
func (e encoder) appendLeafValue(b []byte, n *tree.Node, v tree.Value) []byte {
	switch e.enc {
	case gpb.Encoding_PROTO:
		return appendTyped(b, v)
	case gpb.Encoding_JSON_IETF:
		js, _ := tree.Match{}.LeafJSON(n, v, true)
		return protowire.AppendBytes(protowire.AppendTag(b, fValJSONIETF, protowire.BytesType), js)
	}
	js, _ := tree.Match{}.LeafJSON(n, v, false)
	return protowire.AppendBytes(protowire.AppendTag(b, fValJSON, protowire.BytesType), js)
}

// appendTyped appends the fields of tree.Typed(v): a oneof member, so
// written even when zero.
func appendTyped(b []byte, v tree.Value) []byte {
	switch {
	case v.IsUint():
		return protowire.AppendVarint(protowire.AppendTag(b, fValUint, protowire.VarintType), v.UintVal())
	case v.IsInt():
		return protowire.AppendVarint(protowire.AppendTag(b, fValInt, protowire.VarintType), uint64(v.IntVal()))
	case v.IsBool():
		return protowire.AppendVarint(protowire.AppendTag(b, fValBool, protowire.VarintType), protowire.EncodeBool(v.BoolVal()))
	case v.IsList():
		var inner []byte
		for _, el := range v.Elems() {
			one := appendTyped(nil, el)
			inner = protowire.AppendTag(inner, fArrayElement, protowire.BytesType)
			inner = protowire.AppendBytes(inner, one)
		}
		b = protowire.AppendTag(b, fValLeaflist, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	return protowire.AppendString(protowire.AppendTag(b, fValString, protowire.BytesType), v.Str())
}
