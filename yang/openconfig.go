package yang

// The OpenConfig bindings the underlay compiler builds device configuration
// with (gen/oc) come from modules that are not Kedge's: cmd/ocgen reads
// them from the ygot module in the module cache and runs ygot's generator.
//
//go:generate go run ./cmd/ocgen -o ../gen/oc/oc.go
