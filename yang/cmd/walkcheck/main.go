// Command walkcheck reports code that addresses the Kedge tree by name
// instead of through the generated typed access (gen/kedgetree to read,
// gen/kedgepath to build paths), so that a leaf renamed in yang/ breaks
// the build wherever it is used. `make lint` runs it on ./...; it exits 3
// when it finds something.
//
// Outside gnmi/tree itself and gen/, and outside _test.go files, it
// reports:
//
//   - the name-based walks of gnmi/tree: (*Inst).Sub, Get, Entries and
//     Len, (*Node).Child, (*Schema).Find;
//   - gnmi/tree.ParsePath of a constant (a hand-written path);
//   - a gNMI PathElem literal whose Name is a constant (a hand-built path);
//   - a constant string that is a /kedge path;
//   - a comparison of a schema node's Name with a constant.
//
// Names that come from data (a client's path, a node being encoded) are
// not walks and are not reported.
package main

import "golang.org/x/tools/go/analysis/singlechecker"

func main() { singlechecker.Main(Analyzer) }
