// Package pebblecmp compares Kedge's write-ahead log (gnmi/store/internal/wal)
// with pebble's record package, which tells a torn tail from corruption
// with its WAL sync chunks. It is its own module so that pebble never
// enters Kedge's go.mod: the comparison decided against using it (see
// BENCHMARKS.md), and it stays here to be rerun.
//
//	cd gnmi/store/internal/wal/pebblecmp && go test -run . -bench . -benchtime 1x
package pebblecmp
