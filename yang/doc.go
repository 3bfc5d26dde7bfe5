// Package yang holds Kedge's YANG modules (the kedge-*.yang files beside this
// file) and the small amount of Go that loads, checks and lists them.
//
// The modules are the public API of the daemon: every path under /kedge is
// something clients script against. Load parses and resolves them with
// goyang; Check enforces the subset of YANG the tree store's validator
// supports (see restrictions.go) and the OpenConfig conventions we rely on
// (config/state containers, list keys that are leafrefs into them); Tree
// renders a pyang-style listing for the README.
//
// The go:generate lines below rebuild everything derived from the modules:
// the typed paths in gen/kedgepath, the typed tree readers in gen/kedgetree
// (both by cmd/treegen, see package treegen) and the tree listing in the
// repository README. `make generate` runs them.
package yang

// gen/ holds no ygot structs: gen/doc.go says why.
//
//go:generate go run ./cmd/yangcheck .
//go:generate rm -rf ../gen/kedgepath ../gen/kedgetree
//go:generate go run ./cmd/treegen -paths ../gen/kedgepath -readers ../gen/kedgetree .
//go:generate go run ./cmd/yangtree -readme ../README.md .
