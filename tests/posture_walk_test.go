package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/tests/needs"
)

// The Go twin of deploy/ansible/posture-transition-test.yml: three
// kedge-daemon binaries, each running (listener and dataplane) in a network namespace
// of its own joined by a bridge, walk 5→4→3→2→1→2→3→4→5; at every level
// each node's kernel routes, its route state, its VPP governance segment
// (read with kedge-daemon governance, as the VPP plugin would) and the
// notarization fidelity and VPP flow policy its accord states must be what
// deploy/ansible/posture-walk.yml (the seed's tables) says. At every level
// each node also opens one Shellstream session of each type to the next
// node, as identities a real SPIRE agent issues, with the real
// kedge-daemon shell verb, and each node's notary log must record what
// the level's fidelity says (posture_walk_shell_test.go).

// walkSpec is deploy/ansible/posture-walk.yml.
type walkSpec struct {
	Walk      []int `yaml:"walk"`
	Endpoints []struct {
		Name   string `yaml:"name"`
		Kind   string `yaml:"kind"`
		Prefix string `yaml:"prefix"`
	} `yaml:"endpoints"`
	Routes []struct {
		Prefix string `yaml:"prefix"`
		Class  string `yaml:"class"`
		Tier   string `yaml:"tier"`
		Levels []int  `yaml:"levels"`
	} `yaml:"routes"`
	Levels       map[int]map[string]any `yaml:"levels"`
	SessionTiers map[string]string      `yaml:"session_tiers"`
	Handshakes   map[int]struct {
		Remote  map[string]string `yaml:"remote"`
		Console map[string]string `yaml:"console"`
	} `yaml:"handshakes"`
}

func readWalkSpec(t *testing.T) walkSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "ansible", "posture-walk.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s walkSpec
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("posture-walk.yml: %v", err)
	}
	if len(s.Walk) == 0 || len(s.Routes) == 0 || len(s.Levels) != 5 || len(s.Handshakes) != 5 || len(s.SessionTiers) != 5 {
		t.Fatalf("posture-walk.yml: walk %v, %d routes, %d levels, %d handshake levels, %d session tiers",
			s.Walk, len(s.Routes), len(s.Levels), len(s.Handshakes), len(s.SessionTiers))
	}
	return s
}

// walkNode is one daemon and its namespace.
type walkNode struct {
	name, ns, addr, shm, sock string
	c                         gpb.GNMIClient
}

func TestPostureWalkThreeNodes(t *testing.T) {
	needRoot(t)
	needs.Tool(t, "nsenter", "the nodes' daemons and sessions run in the nodes' namespaces")
	needs.Tool(t, "setpriv", "each tier's sessions run as the uid SPIRE maps to it")
	spec := readWalkSpec(t)
	dir := t.TempDir()
	// The binary and the nodes' certificates are read by the tiers' uids
	// too: a directory they can reach.
	pub, err := os.MkdirTemp("", fmt.Sprintf("kedge-ptt-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := gcliBuild(t, pub, "github.com/guildhouse-co/kedge/server/cmd/kedge-daemon")
	ws := &walkShell{bin: bin, agentSock: walkSPIRE(t), ca: map[string]string{}}
	ids := map[string]string{}
	for tier, id := range walkIDs {
		ids[id] = tier
	}
	policy := ssPolicy(t, dir, ids)
	endpoints := ssEcho(t, dir)
	id := fmt.Sprintf("%d-%x", os.Getpid(), rand.Uint32()&0xffff)

	// The lan: a bridge in a namespace of its own, one veth to each node.
	lan := "kedge-ptt-" + id + "-lan"
	ipCmd(t, "netns", "add", lan)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", lan).Run() })
	ipCmd(t, "-n", lan, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", lan, "link", "set", "br0", "up")
	var nodes []*walkNode
	for i, n := range []string{"a", "b", "c"} {
		nd := &walkNode{name: n, ns: "kedge-ptt-" + id + "-" + n, addr: fmt.Sprintf("10.99.0.%d", i+1),
			shm: "/dev/shm/kedge-ptt-" + id + "-" + n}
		ipCmd(t, "netns", "add", nd.ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", nd.ns).Run() })
		ipCmd(t, "-n", lan, "link", "add", "p"+n, "type", "veth", "peer", "name", "eth0", "netns", nd.ns)
		ipCmd(t, "-n", lan, "link", "set", "p"+n, "master", "br0", "up")
		ipCmd(t, "-n", nd.ns, "addr", "add", nd.addr+"/24", "dev", "eth0")
		ipCmd(t, "-n", nd.ns, "link", "set", "eth0", "up")
		ipCmd(t, "-n", nd.ns, "link", "set", "lo", "up")
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.start(t, bin, dir, id, "--listen", nd.addr+":"+walkListenPort, "--spiffe-socket", "unix://"+ws.agentSock,
			"--shellstream-endpoints", endpoints, "--policy", policy)
		ws.ca[nd.name] = filepath.Join(pub, nd.name+".crt")
		crt, err := os.ReadFile(filepath.Join(dir, nd.name, "tls", "server.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ws.ca[nd.name], crt, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Every node gets the spec's endpoints and routes, via the next node.
	for i, nd := range nodes {
		next := nodes[(i+1)%len(nodes)].addr
		var ups []*gpb.Update
		for _, e := range spec.Endpoints {
			ups = append(ups, jsonUpdate(t, fmt.Sprintf("/kedge/routes/endpoints/endpoint[name=%s]/config", e.Name),
				fmt.Sprintf(`{"name":%q,"kind":%q,"prefix":%q}`, e.Name, e.Kind, e.Prefix)))
		}
		for _, r := range spec.Routes {
			ups = append(ups, jsonUpdate(t, fmt.Sprintf("/kedge/routes/route[prefix=%s][table=254]/config", r.Prefix),
				fmt.Sprintf(`{"prefix":%q,"table":254,"next-hop":%q,"device":"eth0","class":%q,"tier":%q}`, r.Prefix, next, r.Class, r.Tier)))
		}
		if _, err := nd.c.Set(rpcCtx(t), &gpb.SetRequest{Update: ups}); err != nil {
			t.Fatalf("node %s: Set routes: %v", nd.name, err)
		}
	}

	walkStart := time.Now()
	var inSessions time.Duration
	for step, level := range spec.Walk {
		stepStart := time.Now()
		for _, nd := range nodes {
			nd.setLevel(t, level)
		}
		for _, nd := range nodes {
			nd.check(t, spec, bin, level, step > 0 && level > spec.Walk[step-1])
		}
		// Shellstream: every node opens its sessions to the next; then
		// each node's notary log must show what the level records.
		sessionsStart := time.Now()
		received := make([][]walkAttempt, len(nodes))
		for i, nd := range nodes {
			remote, console := ws.handshakes(t, spec, nd, nodes[(i+1)%len(nodes)], level)
			received[(i+1)%len(nodes)] = append(received[(i+1)%len(nodes)], remote...)
			received[i] = append(received[i], console...)
		}
		inSessions += time.Since(sessionsStart)
		changed := step == 0 && level != 5 || step > 0 && level != spec.Walk[step-1]
		for i, nd := range nodes {
			ws.checkNotaryLog(t, spec, nd, level, stepStart, changed, received[i])
		}
		if t.Failed() {
			t.Fatalf("deviation at step %d (level %d)", step, level)
		}
	}
	t.Logf("walk %v on 3 nodes: %v, of which Shellstream sessions %v (%d granted, %d denied; %d granted sessions sampled and recorded)",
		spec.Walk, time.Since(walkStart).Round(time.Millisecond), inSessions.Round(time.Millisecond), ws.granted, ws.denied, ws.recorded)
}

// start runs the node's daemon inside its namespace (nsenter changes
// only the network namespace, so bpffs and /dev/shm stay the host's), its
// dataplane acting there too; extra are more flags.
func (nd *walkNode) start(t *testing.T, bin, dir, id string, extra ...string) {
	t.Helper()
	data := filepath.Join(dir, nd.name)
	pins := "/sys/fs/bpf/kedge-ptt-" + id + "-" + nd.name
	t.Cleanup(func() { os.Remove(nd.shm); os.RemoveAll(pins) })
	sock := filepath.Join(data, "kedge.sock")
	nd.sock = sock
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + nd.ns, bin, "--data-dir", data, "--socket", sock,
		"--netns", nd.ns, "--node-name", nd.name, "--shm-path", nd.shm, "--bpf-pin-dir", pins, "--log-level", "debug"}, extra...)...)
	log, err := os.Create(filepath.Join(dir, nd.name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node %s: exit after SIGINT: %v", nd.name, err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("node %s did not stop", nd.name)
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("node %s log (last 4 KB):\n%s", nd.name, tail(b, 4096))
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	nd.c = gpb.NewGNMIClient(conn)
	// The first RPC waits for the socket (gRPC's wait-for-ready), so no
	// log scraping is needed to know the daemon is up.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := nd.c.Capabilities(ctx, &gpb.CapabilityRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("node %s: %v", nd.name, err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func jsonUpdate(t *testing.T, p, js string) *gpb.Update {
	return &gpb.Update{Path: path(t, p), Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}}}
}

// setLevel sets the node's level and waits, on a subscription, for the
// posture state to report a finished transition to it.
func (nd *walkNode) setLevel(t *testing.T, level int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := nd.c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: path(t, "/kedge/posture/state"), Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	synced := false
	for !synced {
		r, err := sub.Recv()
		if err != nil {
			t.Fatalf("node %s: subscribe posture state: %v", nd.name, err)
		}
		collect(state, r.GetUpdate())
		synced = r.GetSyncResponse()
	}
	before := state["sequence"]
	want := strconv.Itoa(level)
	// Already there (the walk starts at the default level 5): the Set
	// changes nothing and no transition follows.
	unchanged := state["level"] == want && state["effective-level"] == want
	if _, err := nd.c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/posture/config/level"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(level)}}}}}); err != nil {
		t.Fatalf("node %s: set level %d: %v", nd.name, level, err)
	}
	for !unchanged {
		if state["sequence"] != before && state["last-transition/to-level"] == want && state["effective-level"] == want &&
			state["last-transition/result"] != "" {
			if state["last-transition/result"] != "ok" {
				t.Errorf("node %s: transition to %s: result %s", nd.name, want, state["last-transition/result"])
			}
			return
		}
		r, err := sub.Recv()
		if err != nil {
			t.Fatalf("node %s: waiting for the transition to %d (state %v): %v", nd.name, level, state, err)
		}
		collect(state, r.GetUpdate())
	}
}

// collect records a notification's leaves below /kedge/posture/state by
// their path under it.
func collect(state map[string]string, n *gpb.Notification) {
	for _, u := range n.GetUpdate() {
		var parts []string
		for _, e := range append(slices.Clone(n.GetPrefix().GetElem()), u.GetPath().GetElem()...) {
			parts = append(parts, e.GetName())
		}
		k := strings.Join(parts, "/")
		k = strings.TrimPrefix(k, "kedge/posture/state/")
		state[k] = valueString(u.GetVal())
	}
}

func valueString(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(x.UintVal, 10)
	case *gpb.TypedValue_IntVal:
		return strconv.FormatInt(x.IntVal, 10)
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_BoolVal:
		return strconv.FormatBool(x.BoolVal)
	case *gpb.TypedValue_JsonIetfVal:
		return strings.Trim(string(x.JsonIetfVal), `"`)
	}
	return fmt.Sprint(v.GetValue())
}

// check compares the node against the spec at level.
func (nd *walkNode) check(t *testing.T, spec walkSpec, bin string, level int, deescalated bool) {
	t.Helper()
	// Kernel: exactly the routes the level keeps, and none of Kedge's
	// other routes.
	var want []string
	for _, r := range spec.Routes {
		if slices.Contains(r.Levels, level) {
			want = append(want, netip.MustParsePrefix(r.Prefix).String())
		}
	}
	slices.Sort(want)
	got := kernelRoutes(t, nd.ns)
	if !slices.Equal(got, want) {
		t.Errorf("node %s at level %d: kernel routes (proto 107) %v, want %v", nd.name, level, got, want)
	}
	// The tree says why: installed, or withheld by the level.
	for _, r := range spec.Routes {
		p := fmt.Sprintf("/kedge/routes/route[prefix=%s][table=254]/state/status", r.Prefix)
		status := nd.get(t, p)
		wantStatus := "withheld"
		if slices.Contains(r.Levels, level) {
			wantStatus = "installed"
		}
		if status != wantStatus {
			t.Errorf("node %s at level %d: %s %s = %s, want %s", nd.name, level, r.Class, r.Prefix, status, wantStatus)
		}
	}
	// The VPP segment, as the VPP plugin reads it.
	out, err := exec.Command(bin, "governance", "--shm-path", nd.shm).CombinedOutput()
	if err != nil {
		t.Errorf("node %s: kedge-daemon governance: %v\n%s", nd.name, err, out)
	} else if m := regexp.MustCompile(`^level=(\d) `).FindSubmatch(out); m == nil || string(m[1]) != strconv.Itoa(level) {
		t.Errorf("node %s at level %d: VPP segment says %q", nd.name, level, out)
	}
	// The level's accord: handshake policy and session types, mesh mode,
	// notarization fidelity, VPP flow policy.
	accord := fmt.Sprintf("/kedge/accords/accord[level=%d]/state/", level)
	for leaf, key := range map[string]string{"handshake": "handshake", "overlay-mode": "overlay-mode",
		"notary-sampling-percent": "sampling-percent", "notary-flush": "flush", "notary-payload-hashing": "payload-hashing",
		"forensic-snapshot": "forensic-snapshot", "vpp-flow-policy": "vpp-flow-policy"} {
		if got, want := nd.get(t, accord+leaf), fmt.Sprint(spec.Levels[level][key]); got != want {
			t.Errorf("node %s at level %d: accord %s = %s, want %s", nd.name, level, leaf, got, want)
		}
	}
	types := spec.Levels[level]["allowed-session-types"].([]any)
	wantTypes, _ := json.Marshal(types)
	if got := nd.get(t, accord+"allowed-session-types"); got != string(wantTypes) {
		t.Errorf("node %s at level %d: accord allowed-session-types = %s, want %s", nd.name, level, got, wantTypes)
	}
	// The transition's steps: the VPP segment first when tightening (the
	// seed: the data plane tightens before the session layer), last when
	// relaxing.
	steps := nd.steps(t)
	switch {
	case len(steps) == 0:
		t.Errorf("node %s at level %d: the last transition lists no steps", nd.name, level)
	case !deescalated && steps[0] != "shm":
		t.Errorf("node %s tightening to %d: steps %v, want shm first", nd.name, level, steps)
	case deescalated && slices.Index(steps, "shm") < len(slices.DeleteFunc(slices.Clone(steps), func(s string) bool { return s == "notary" }))-1:
		t.Errorf("node %s relaxing to %d: steps %v, want shm last but for the notary's", nd.name, level, steps)
	}
	// The running notary's own fidelity. It reports it from its own
	// writer, after the transition: wait (bounded) until it matches.
	notary := map[string]string{"level": strconv.Itoa(level)}
	for leaf, key := range map[string]string{"sampling-percent": "sampling-percent", "flush-mode": "flush",
		"payload-hashing": "payload-hashing", "frame-headers": "frame-headers"} {
		notary[leaf] = fmt.Sprint(spec.Levels[level][key])
	}
	nd.waitState(t, "/kedge/notary/state", notary, 30*time.Second)
}

// get returns a leaf's value as text.
func (nd *walkNode) get(t *testing.T, p string) string {
	t.Helper()
	resp, err := nd.c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Errorf("node %s: Get %s: %v", nd.name, p, err)
		return ""
	}
	return strings.Trim(getJSON(t, resp), `"`)
}

// steps lists the last transition's step names in index order.
func (nd *walkNode) steps(t *testing.T) []string {
	t.Helper()
	resp, err := nd.c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, "/kedge/posture/state/last-transition/steps")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatalf("node %s: Get steps: %v", nd.name, err)
	}
	byIndex := map[int]string{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			elems := append(slices.Clone(n.GetPrefix().GetElem()), u.GetPath().GetElem()...)
			if elems[len(elems)-1].GetName() != "name" {
				continue
			}
			for _, e := range elems {
				if e.GetName() == "step" {
					i, _ := strconv.Atoi(e.GetKey()["index"])
					byIndex[i] = valueString(u.GetVal())
				}
			}
		}
	}
	var out []string
	for _, i := range slices.Sorted(maps.Keys(byIndex)) {
		out = append(out, byIndex[i])
	}
	return out
}

// kernelRoutes lists the namespace's protocol-107 IPv4 destinations.
func kernelRoutes(t *testing.T, ns string) []string {
	t.Helper()
	out := []string{}
	for _, l := range strings.Split(strings.TrimSpace(ipCmd(t, "-n", ns, "-4", "route", "show", "table", "all", "proto", "107")), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	slices.Sort(out)
	return out
}

// waitState subscribes to a state container and waits until each named
// leaf under it has the wanted value, failing at the deadline with what
// it last saw.
func (nd *walkNode) waitState(t *testing.T, p string, want map[string]string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	sub, err := nd.c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: path(t, p), Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	prefix := strings.TrimPrefix(p, "/") + "/"
	for {
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return
		}
		r, err := sub.Recv()
		if err != nil {
			t.Errorf("node %s: %s never reached %v (last %v): %v", nd.name, p, want, got, err)
			return
		}
		for _, u := range r.GetUpdate().GetUpdate() {
			var parts []string
			for _, e := range append(slices.Clone(r.GetUpdate().GetPrefix().GetElem()), u.GetPath().GetElem()...) {
				parts = append(parts, e.GetName())
			}
			got[strings.TrimPrefix(strings.Join(parts, "/"), prefix)] = valueString(u.GetVal())
		}
	}
}
