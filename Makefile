# Kedge: `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# make run is the demo node (kedge-daemon demo): as root it acts in a network
# namespace of its own, with per-instance BPF pins and its VPP segment and
# socket in the data dir; make clean-run removes what it left.
RUN_DIR    ?= ./var
RUN_LISTEN ?= 127.0.0.1:9339
RUN_NETNS  ?= kedge-demo

.PHONY: run
run: build ## run a demo node (data in ./var, gNMI on 127.0.0.1:9339; as root in network namespace kedge-demo)
	./bin/kedge-daemon demo --data-dir $(RUN_DIR) --listen $(RUN_LISTEN) --netns $(RUN_NETNS)

.PHONY: clean-run
clean-run: build ## remove what make run left (its namespace, BPF pins, segment, socket); the tree in ./var stays
	./bin/kedge-daemon demo-clean --data-dir $(RUN_DIR)

# Fuzzing is bounded by executions, not time: with a time bound, go test
# -fuzz can fail with "context deadline exceeded" when a worker is slow
# to answer on a loaded machine.
FUZZTIME ?= 30000x

.PHONY: test
test: ## run every test with -race (root runs the kernel tests too), then the fuzz targets briefly
# -p 1: one package at a time, so timing-sensitive kernel tests (WireGuard
# handshakes, echo streams) do not compete with another package's load.
	$(GO) test -race -count=1 -p 1 -timeout 40m $(PKGS)
	$(GO) test -run '^$$' -fuzz '^FuzzParsePath$$' -fuzztime $(FUZZTIME) -parallel 1 ./gnmi/tree
	$(GO) test -run '^$$' -fuzz '^FuzzSetValue$$' -fuzztime $(FUZZTIME) -parallel 1 ./gnmi/tree

# The version stamped into the binaries (kedge-daemon --version and
# /kedge/system/state/version). GOFLAGS has -buildvcs=false, so the Go
# toolchain records no revision: make build VERSION=v1.2.3 overrides it.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/guildhouse-co/kedge/server/buildinfo.version=$(VERSION)

.PHONY: build
build: ## build the binaries into ./bin (kedge-daemon, kedge-cni, kedge-wg); VERSION=... overrides git describe
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./server/cmd/kedge-daemon ./cni/cmd/kedge-cni ./dataplane/wgmesh/cmd/kedge-wg

.PHONY: generate
generate: proto-gen ## rebuild everything generated (gen/, the README tree listing)
	$(GO) generate ./yang/...

# Kedge's own protocols: proto/kedge/<name>/v1 → gen/proto with buf and the
# protoc plugins pinned in go.mod (no remote plugins, no network).
PROTOS = $(shell find proto -name '*.proto' 2>/dev/null)

.PHONY: proto-gen
proto-gen: ## rebuild gen/proto from proto/ with buf
	@if [ -n "$(PROTOS)" ]; then $(GO) tool buf generate; else rm -rf gen/proto; fi

.PHONY: yang-validate
yang-validate: ## check the YANG modules with goyang: zero errors
	$(GO) run ./yang/cmd/yangcheck yang

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, walkcheck (no string walks of the tree) and go mod tidy -diff
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	$(GO) run ./yang/cmd/walkcheck $(PKGS)
	$(GO) mod tidy -diff
	@if [ -n "$(PROTOS)" ]; then $(GO) tool buf lint && $(GO) tool buf format --diff --exit-code; fi

.PHONY: bench
bench: ## run the benchmarks (results go in BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m $(PKGS)
