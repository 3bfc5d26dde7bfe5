// Package gnmi is a stand-in for the gNMI protobufs.
package gnmi

type PathElem struct {
	Name string
	Key  map[string]string
}
