// Package gen holds Kedge's generated Go packages; nothing in it is edited
// by hand. `make generate` rebuilds it and CI fails on a difference.
//
//   - kedgepath: typed gNMI paths, enumerations and leaf value encoders of
//     the /kedge tree (yang/cmd/treegen). It imports only the gNMI
//     protobufs, so the CNI plugin and any Go gNMI client can use it.
//   - kedgetree: typed readers over gnmi/tree (yang/cmd/treegen), for the
//     daemon's reconcilers, rules and posture engine, and for clients that
//     load a Get response into a tree of their own.
//   - proto: buf's output for Kedge's own protocols (proto/), when there
//     are any.
//   - oc: ygot GoStructs and schema of the OpenConfig models the underlay
//     compiler writes device configuration in (openconfig-interfaces,
//     -if-ethernet, -if-ip, -vlan; yang/cmd/ocgen, from the modules inside
//     the ygot module). They are the devices' models, not Kedge's tree.
//
// There are no ygot structs of Kedge's own tree here. The ygot GoStructs of the tree (12,000
// lines) and the ygot path structs that kedgepath replaces were deleted
// rather than made the Go client API, for three reasons. Nothing used them
// but tests of the generator itself. ygnmi, the usual client over ygot
// structs, generates its queries for compressed schemas only (its pathgen
// says so), while Kedge's public paths are the uncompressed ones with
// their config/state split, so using it would mean writing and keeping a
// ygnmi generator of our own. And a second typed model of the same tree,
// validated by a different engine, is one more thing to keep in step with
// yang/: a client that loads a Get response into gnmi/tree (validated by
// the daemon's own schema code) and reads it with kedgetree sees exactly
// the types and rules the daemon applies, and writes with kedgepath's
// typed paths and values. Package gnmi/mirror does the loading; the test
// tests.TestMirrorDaemonTree writes a running daemon's config with
// kedgepath, reads its whole tree back through a mirror with kedgetree,
// and checks that the mirror encodes to exactly the JSON_IETF the daemon
// serves for /, config and state. That is the client API issue 20's
// kedgectl builds on.
package gen
