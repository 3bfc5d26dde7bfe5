package notary

import (
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func TestAnnotationRoundTrip(t *testing.T) {
	a := Annotation{Writer: Writer{"alice", "operator", "password"}, Level: 3, Old: []tree.Value{
		{}, tree.String("eth0"), tree.String(""), tree.Uint(254), tree.Int(-7), tree.Bool(false), tree.Bool(true),
		tree.ListValue([]tree.Value{tree.String("10.0.0.0/8"), tree.String("")}), tree.ListValue(nil),
	}}
	b := AppendAnnotation(nil, a)
	got, err := DecodeAnnotation(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Writer != a.Writer || got.Level != 3 || len(got.Old) != len(a.Old) {
		t.Fatalf("decoded %+v", got)
	}
	for i := range a.Old {
		if !got.Old[i].Equal(a.Old[i]) || got.Old[i].IsSet() != a.Old[i].IsSet() {
			t.Errorf("old value %d: %v, want %v", i, got.Old[i], a.Old[i])
		}
	}
	// Every truncation and a flipped version are errors, never a panic.
	for i := 0; i < len(b); i++ {
		if _, err := DecodeAnnotation(b[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := DecodeAnnotation(append([]byte{9}, b[1:]...)); err == nil {
		t.Error("unknown version accepted")
	}
}

func FuzzDecodeAnnotation(f *testing.F) {
	f.Add(AppendAnnotation(nil, Annotation{Writer: Writer{"a", "b", "c"}, Level: 1, Old: []tree.Value{tree.String("x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnnotation(b)
		if err != nil {
			return
		}
		if _, err := DecodeAnnotation(AppendAnnotation(nil, a)); err != nil {
			t.Fatalf("re-encoded annotation does not decode: %v", err)
		}
	})
}
