package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// testID is unique to this test process and run: pid and a random part,
// for namespaces, pins, segments and device names.
var testID = fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.IntN(1<<16))

// ipOut runs ip and fails the test on error.
func ipOut(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a namespace with lo up and, when addr is set, a veth
// "eth0" (peer "eth0p") holding addr, both up; removed at cleanup.
func newNetns(t testing.TB, name, addr string) {
	t.Helper()
	ipOut(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipOut(t, "-n", name, "link", "set", "lo", "up")
	if addr != "" {
		ipOut(t, "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
		ipOut(t, "-n", name, "addr", "add", addr, "dev", "eth0")
		ipOut(t, "-n", name, "link", "set", "eth0", "up")
		ipOut(t, "-n", name, "link", "set", "eth0p", "up")
	}
}

// needKernel skips (or fails under KEDGE_REQUIRE_KERNEL) without root,
// ip or a bpffs at /sys/fs/bpf.
func needKernel(t *testing.T, why string) {
	t.Helper()
	needs.Root(t, why)
	needs.Tool(t, "ip", why)
	b, err := os.ReadFile("/proc/mounts")
	if err != nil || !regexp.MustCompile(`(?m)^\S+ /sys/fs/bpf bpf `).Match(b) {
		needs.Unavailable(t, "needs bpffs mounted at /sys/fs/bpf (%v)", err)
	}
}

// unixClient is a gNMI client on a daemon's unix socket; as root it has
// the master tier.
func unixClient(t testing.TB, sock string) gpb.GNMIClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return gpb.NewGNMIClient(conn)
}

func gnmiPath(t testing.TB, p string) *gpb.Path {
	t.Helper()
	elems, err := tree.ParsePath(p)
	if err != nil {
		t.Fatal(err)
	}
	return &gpb.Path{Elem: elems}
}

// setJSON sets path to a JSON_IETF value.
func setJSON(t testing.TB, c gpb.GNMIClient, path, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: gnmiPath(t, path),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}}}}}); err != nil {
		t.Fatalf("Set %s: %v", path, err)
	}
}

// getLeaves returns path's leaves as path → value text ("" when absent).
func getLeaves(t testing.TB, c gpb.GNMIClient, path string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{gnmiPath(t, path)}, Encoding: gpb.Encoding_PROTO})
	out := map[string]string{}
	if err != nil {
		return out
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			p := tree.RenderPath(append(append([]*gpb.PathElem{}, n.GetPrefix().GetElem()...), u.GetPath().GetElem()...))
			out[p] = valText(u.GetVal())
		}
	}
	return out
}

// valText is a scalar value as text.
func valText(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(x.UintVal, 10)
	case *gpb.TypedValue_IntVal:
		return strconv.FormatInt(x.IntVal, 10)
	case *gpb.TypedValue_BoolVal:
		return strconv.FormatBool(x.BoolVal)
	case *gpb.TypedValue_JsonIetfVal:
		return string(x.JsonIetfVal)
	}
	return fmt.Sprint(v.GetValue())
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pinDump renders a pin directory: each map's entries as hex, other pins
// by name only, sorted; "absent" when the directory does not exist.
func pinDump(t testing.TB, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		m, err := ebpf.LoadPinnedMap(p, &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			lines = append(lines, e.Name()+": not a map")
			continue
		}
		var k, v []byte
		it := m.Iterate()
		var entries []string
		for it.Next(&k, &v) {
			entries = append(entries, hex.EncodeToString(k)+"="+hex.EncodeToString(v))
		}
		if err := it.Err(); err != nil {
			t.Fatalf("iterate %s: %v", p, err)
		}
		m.Close()
		lines = append(lines, e.Name()+": "+strings.Join(entries, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// fileBytes returns a file's bytes, or nil when it is absent.
func fileBytes(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustNotExist fails for every path that exists.
func mustNotExist(t testing.TB, what string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s: %s exists", what, p)
		}
	}
}
