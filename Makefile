# Kedge: `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

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
test: spire kube-tools ## run every test with -race (root runs the kernel tests too), then the fuzz targets briefly
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
build: ## build the binaries into ./bin (kedge-daemon, kedgectl, kedge-cni, kedge-wg); VERSION=... overrides git describe
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./server/cmd/kedge-daemon ./server/cmd/kedgectl ./cni/cmd/kedge-cni ./dataplane/wgmesh/cmd/kedge-wg

# Container images are built and run with podman. Debian's podman here
# needs runc and explicit ulimits (deploy/podman/containers.conf); set
# CONTAINERS_CONF to use your own.
PODMAN          ?= podman
CONTAINERS_CONF ?= $(CURDIR)/deploy/podman/containers.conf
export CONTAINERS_CONF
IMAGE     ?= localhost/kedge:$(VERSION)
# Also tagged, so deploy/kubernetes's kustomization (image kedge, tag
# latest) finds the last build; empty for no second tag.
IMAGE_LATEST ?= $(if $(filter localhost/kedge:$(VERSION),$(IMAGE)),localhost/kedge:latest)
IMAGE_DIR ?= $(CURDIR)/.build/image
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the build's, so labels do not change between
# two builds of one commit.
CREATED   ?= $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

.PHONY: container-build
container-build: ## build the image (IMAGE=, default localhost/kedge:VERSION) FROM scratch, offline: static kedge-daemon, kedge-cni, kedge-wg
	rm -rf $(IMAGE_DIR)
	mkdir -p $(IMAGE_DIR)/rootfs/usr/local/bin $(IMAGE_DIR)/rootfs/etc/ssl/certs $(IMAGE_DIR)/rootfs/tmp $(IMAGE_DIR)/owned
	chmod 1777 $(IMAGE_DIR)/rootfs/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(IMAGE_DIR)/rootfs/usr/local/bin/ \
		./server/cmd/kedge-daemon ./cni/cmd/kedge-cni ./dataplane/wgmesh/cmd/kedge-wg
	install -m 0644 deploy/image/etc/passwd deploy/image/etc/group $(IMAGE_DIR)/rootfs/etc/
	install -m 0644 $(CA_BUNDLE) $(IMAGE_DIR)/rootfs/etc/ssl/certs/ca-certificates.crt
	$(PODMAN) build --pull=never --layers=false -f Containerfile -t $(IMAGE) $(if $(IMAGE_LATEST),-t $(IMAGE_LATEST)) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) \
		$(IMAGE_DIR)
	@$(PODMAN) image inspect --format '$(IMAGE): {{.Size}} bytes' $(IMAGE)

# The dev container (seed: make dev-build, dev, dev-exec, dev-down): Go,
# gcc, make, git, ip, wg and ansible-playbook, built FROM scratch from this
# host's Debian packages and Go toolchain (no base image, no network), run
# privileged on the host's network (the kernel tests make namespaces,
# links, routes and BPF pins as on the host) with the clone at /src and the
# host's Go module and build caches mounted, so go works offline. Plain
# podman, not podman-compose: Debian's podman-compose 1.0.3 adds its
# project network to every container, which podman refuses beside the
# host network (and it cannot name the host network any other way).
DEV_IMAGE ?= localhost/kedge-dev:latest
DEV_NAME  ?= kedge-dev
DEV_DIR   ?= $(CURDIR)/.build/dev

.PHONY: dev-build
dev-build: ## build the dev container image (DEV_IMAGE=) offline, from this host's packages and Go
	rm -rf $(DEV_DIR)
	mkdir -p $(DEV_DIR)
	deploy/dev/rootfs.sh $(DEV_DIR)/rootfs.tar
	$(PODMAN) build --pull=never --layers=false -f deploy/dev/Containerfile -t $(DEV_IMAGE) $(DEV_DIR)
	rm -rf $(DEV_DIR)

.PHONY: dev
dev: ## start the dev container (DEV_NAME=, default kedge-dev; the clone at /src); make dev-exec opens a shell in it
	$(PODMAN) run -d --name $(DEV_NAME) --privileged --network host \
		-v $(CURDIR):/src -v "$$($(GO) env GOMODCACHE)":/root/go/pkg/mod -v "$$($(GO) env GOCACHE)":/root/.cache/go-build \
		-v "$$(git rev-parse --path-format=absolute --git-common-dir)":"$$(git rev-parse --path-format=absolute --git-common-dir)" \
		-v /sys/fs/bpf:/sys/fs/bpf -e GOPROXY="$$($(GO) env GOPROXY)" $(DEV_IMAGE)

.PHONY: dev-exec
dev-exec: ## open a shell in the dev container; CMD='make test' runs that instead
ifdef CMD
	$(PODMAN) exec $(DEV_NAME) bash -c '$(CMD)'
else
	$(PODMAN) exec -it $(DEV_NAME) bash
endif

.PHONY: dev-down
dev-down: ## stop and remove the dev container
	$(PODMAN) rm -f -t 10 $(DEV_NAME)

.PHONY: generate
generate: proto-gen kube-gen ## rebuild everything generated (gen/, the README tree listing, the CRDs)
	$(GO) generate ./yang/...

# Kedge's own protocols: proto/kedge/<name>/v1 → gen/proto with buf and the
# protoc plugins pinned in go.mod (no remote plugins, no network).
PROTOS = $(shell find proto -name '*.proto' 2>/dev/null)

.PHONY: proto-gen
proto-gen: ## rebuild gen/proto from proto/ with buf
	@if [ -n "$(PROTOS)" ]; then $(GO) tool buf generate; else rm -rf gen/proto; fi

# The Kubernetes API types' deepcopy methods (which must sit beside the
# types, in server/kube/api) and their CRD manifests, with controller-gen
# pinned in go.mod.
.PHONY: kube-gen
kube-gen: ## rebuild the CRDs in deploy/kubernetes/crds and the API types' deepcopy
	$(GO) tool controller-gen object paths=./server/kube/api/...
	rm -f deploy/kubernetes/crds/*.yaml
	$(GO) tool controller-gen crd:crdVersions=v1 paths=./server/kube/api/... output:crd:artifacts:config=deploy/kubernetes/crds

.PHONY: yang-validate
yang-validate: ## check the YANG modules with goyang: zero errors
	$(GO) run ./yang/cmd/yangcheck yang

# The seed's YANG tooling was a Python compiler tested with pytest. Kedge's
# is Go (goyang and the generators under yang/cmd), so python-test runs
# what stands in for it: yang-validate and the yang package's tests.
.PHONY: python-test
python-test: yang-validate ## the seed's YANG compiler tests; here Go: yang-validate and go test ./yang/...
	$(GO) test -count=1 ./yang/...

.PHONY: mod-tidy
mod-tidy: ## go mod tidy (go.mod, go.sum)
	$(GO) mod tidy

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, walkcheck (no string walks of the tree) and go mod tidy -diff (the pebble comparison module's too)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	$(GO) run ./yang/cmd/walkcheck $(PKGS)
	$(GO) mod tidy -diff
	cd gnmi/store/internal/wal/pebblecmp && $(GO) mod tidy -diff && $(GO) vet ./...
	@if [ -n "$(PROTOS)" ]; then $(GO) tool buf lint && $(GO) tool buf format --diff --exit-code; fi

.PHONY: posture-test
posture-test: build spire ## the seed's posture-transition-test.yml: three nodes walk 5..1..5 with Shellstream sessions (root, ansible-core)
	$(GO) build -o bin/gnmi_cli github.com/openconfig/gnmi/cmd/gnmi_cli
	ansible-playbook deploy/ansible/posture-transition-test.yml -e build=false -e spire_dir=$(SPIRE_DIR)

.PHONY: bench
bench: spire kube-tools ## run the benchmarks (results go in BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m $(PKGS)

# SPIRE server and agent for the Shellstream end-to-end test, built from
# their own module (tests/tools/spire, never the project's go.mod) with cgo
# (sqlite datastore) into a cache outside the clone; the test finds them
# through KEDGE_SPIRE_DIR or this default path. A cold build takes minutes.
SPIRE_VERSION := v1.13.3
SPIRE_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kedge/tools/spire-$(SPIRE_VERSION)

.PHONY: spire
spire: ## build spire-server and spire-agent into $(SPIRE_DIR) when missing
	@if [ -x "$(SPIRE_DIR)/spire-server" ] && [ -x "$(SPIRE_DIR)/spire-agent" ]; then exit 0; fi; \
	set -e; tmp="$$(mktemp -d "$(SPIRE_DIR).tmp.XXXXXX" 2>/dev/null || { mkdir -p "$$(dirname "$(SPIRE_DIR)")"; mktemp -d "$(SPIRE_DIR).tmp.XXXXXX"; })"; \
	echo "building SPIRE $(SPIRE_VERSION) into $(SPIRE_DIR) (cgo; several minutes on 2 cores)"; \
	start=$$(date +%s); \
	(cd tests/tools/spire && CGO_ENABLED=1 $(GO) build -trimpath -o "$$tmp/" \
		github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent); \
	rm -rf "$(SPIRE_DIR)"; mv "$$tmp" "$(SPIRE_DIR)"; \
	echo "built SPIRE $(SPIRE_VERSION) in $$(( $$(date +%s) - start )) s"

# kube-apiserver and etcd for the Kubernetes tests (server/kube, tests/), each
# built from its own module under tests/tools (never the project's go.mod)
# into a cache outside the clone. kube-apiserver needs its k8s.io staging
# modules replaced by the published ones (tests/tools/kube/go.mod) and its
# version stamped the way Kubernetes' own build does. The tests find the
# binaries through KEDGE_KUBE_TOOLS or this default folder.
KUBE_VERSION   := v1.37.2
ETCD_VERSION   := v3.6.8
KUBE_TOOLS     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kedge/tools
KUBE_APISERVER := $(KUBE_TOOLS)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
ETCD_SERVER    := $(KUBE_TOOLS)/etcd-$(ETCD_VERSION)/etcd
KUBE_LDFLAGS    = $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=37 \
	-X $(p).gitTreeState=clean -X $(p).buildDate=1970-01-01T00:00:00Z)

.PHONY: kube-tools
kube-tools: $(KUBE_APISERVER) $(ETCD_SERVER) ## build kube-apiserver and etcd into $(KUBE_TOOLS) when missing

$(KUBE_APISERVER):
	@echo "building kube-apiserver $(KUBE_VERSION) into $(@D) (about 8 minutes cold on 2 cores)"
	@set -e; mkdir -p "$(@D)"; tmp="$$(mktemp "$@.tmp.XXXXXX")"; trap 'rm -f "$$tmp"' EXIT; start=$$(date +%s); \
	(cd tests/tools/kube && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(KUBE_LDFLAGS)" \
		-o "$$tmp" k8s.io/kubernetes/cmd/kube-apiserver); \
	mv "$$tmp" "$@"; echo "built kube-apiserver in $$(( $$(date +%s) - start )) s"

$(ETCD_SERVER):
	@echo "building etcd $(ETCD_VERSION) into $(@D)"
	@set -e; mkdir -p "$(@D)"; tmp="$$(mktemp "$@.tmp.XXXXXX")"; trap 'rm -f "$$tmp"' EXIT; start=$$(date +%s); \
	(cd tests/tools/etcd && CGO_ENABLED=0 $(GO) build -trimpath -o "$$tmp" go.etcd.io/etcd/server/v3); \
	mv "$$tmp" "$@"; echo "built etcd in $$(( $$(date +%s) - start )) s"
