package tree

import (
	"encoding/json"
	"testing"
)

// A boolean leaf takes JSON true and false, and the strings "true" and
// "false" that tools carrying every attribute as a string send; any other
// string or a number is refused.
func TestBoolFromJSON(t *testing.T) {
	typ := &Type{Kind: TBool, Name: "boolean"}
	for _, c := range []struct {
		in   any
		want Value
		ok   bool
	}{
		{true, Bool(true), true},
		{false, Bool(false), true},
		{"true", Bool(true), true},
		{"false", Bool(false), true},
		{"True", Value{}, false},
		{"1", Value{}, false},
		{"", Value{}, false},
		{json.Number("1"), Value{}, false},
	} {
		got, err := typ.ParseJSON(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseJSON(%#v): err %v, want ok %v", c.in, err, c.ok)
			continue
		}
		if c.ok && !got.Equal(c.want) {
			t.Errorf("ParseJSON(%#v) = %v, want %v", c.in, got, c.want)
		}
	}
}
