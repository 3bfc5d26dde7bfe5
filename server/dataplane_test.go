package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// effective reads /kedge/posture/state/effective-level (0 if unset).
func effective(t *testing.T, c gpb.GNMIClient) uint64 {
	t.Helper()
	resp, err := c.Get(ctxAs(t, "master", masterPW), &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/posture/state/effective-level")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		return 0
	}
	return resp.GetNotification()[0].GetUpdate()[0].GetVal().GetUintVal()
}

// TestPostureWithoutBackends: with the dataplane off the engine still
// runs and publishes the effective level in state.
func TestPostureWithoutBackends(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	c := tlsClient(t, d, nil)
	waitUntil(t, "initial effective level", func() bool { return effective(t, c) == 5 })
	if err := setLevel(c, ctxAs(t, "master", masterPW), t, 2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "effective level 2", func() bool { return effective(t, c) == 2 })
}

// TestPostureDrivesShmAndBPF: a gNMI Set of the level reaches the VPP
// segment and the pinned BPF map of a running daemon, in that order of
// steps, and back.
func TestPostureDrivesShmAndBPF(t *testing.T) {
	needs.Root(t, "the BPF map (CAP_BPF) and bpffs")
	cfg := testConfig(t)
	cfg.Dataplane = "auto"
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), rand.IntN(1<<30))
	cfg.ShmPath = filepath.Join(t.TempDir(), "governance")
	cfg.BPFPinDir = "/sys/fs/bpf/kedge-server-test-" + suffix
	t.Cleanup(func() { os.RemoveAll(cfg.BPFPinDir) })
	d := startDaemon(t, cfg)
	c := tlsClient(t, d, nil)
	rd, err := segment.OpenReader(cfg.ShmPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b, err := pinned.Open(pinned.WithPinDir(cfg.BPFPinDir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	both := func(level uint8) func() bool {
		return func() bool {
			st, err := rd.Poll()
			got, berr := b.Level()
			return err == nil && berr == nil && st.Level == level && got == level
		}
	}
	waitUntil(t, "level 5 in shm and map", both(5))
	for _, level := range []uint8{3, 1, 5} {
		if err := setLevel(c, ctxAs(t, "master", masterPW), t, uint64(level)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("level %d in shm and map", level), both(level))
		waitUntil(t, fmt.Sprintf("effective level %d in state", level), func() bool { return effective(t, c) == uint64(level) })
	}
}

// TestSystemState: /kedge/system/state shows the node name, the build and
// the boot time, and follows /kedge/system/config.
func TestSystemState(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	c := tlsClient(t, d, nil)
	ctx := ctxAs(t, "master", masterPW)
	get := func() map[string]string {
		out := map[string]string{}
		resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/system/state")}, Encoding: gpb.Encoding_PROTO})
		if err != nil {
			return out
		}
		for _, n := range resp.GetNotification() {
			for _, u := range n.GetUpdate() {
				elems := u.GetPath().GetElem()
				v := u.GetVal()
				s := v.GetStringVal()
				if _, isUint := v.GetValue().(*gpb.TypedValue_UintVal); isUint {
					s = fmt.Sprint(v.GetUintVal())
				}
				out[elems[len(elems)-1].GetName()] = s
			}
		}
		return out
	}
	waitUntil(t, "system state", func() bool {
		s := get()
		return s["node-name"] == "kedge-test-node" && s["version"] != "" && s["boot-time"] != ""
	})
	if _, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config"),
		Val: jsonIETF(`{"cluster":"lab","role":"appliance"}`)}}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "cluster and role in state", func() bool { s := get(); return s["cluster"] == "lab" && s["role"] == "appliance" })
}

// TestBackgroundRunsUnderStartContext: the posture engine (and the
// components beside it) run under the context StartContext was given, as
// Run gives its own: when it ends, they stop without a Shutdown.
func TestBackgroundRunsUnderStartContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d, err := StartContext(ctx, testConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(time.Second)
	cancel()
	stopped := make(chan struct{})
	go func() {
		d.dp.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the posture engine still runs after the daemon's context ended")
	}
}
