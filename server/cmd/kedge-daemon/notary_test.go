package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

func notaryVerb(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"notary"}, args...), nil, &out, &errb)
	return out.String(), errb.String(), code
}

// The notary verbs against a running daemon, then offline, then against
// damaged, rolled-back and forked copies of its log.
func TestNotaryVerbs(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket, cfg.NodeName = dir, "", filepath.Join(dir, "kedge.sock"), "cli-node"
	cfg.Dataplane, cfg.ShmPath, cfg.BPFPinDir, cfg.MetricsListen = "off", "off", "off", "off"
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	d, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(5 * time.Second)
	conn, err := grpc.NewClient("unix://"+d.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := gpb.NewGNMIClient(conn)
	set := func(p string, v string) {
		t.Helper()
		e, _ := tree.ParsePath(p)
		if _, err := c.Set(context.Background(), &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: e},
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	set("/kedge/routes/route[prefix=10.5.0.0/16][table=254]/config/device", "eth0")
	n := d.Notary()
	id := "cli-1"
	for i := 2; !notarymodel.Sampled(id, 10); i++ { // level 5 records 10% of sessions
		id = "cli-" + strconv.Itoa(i)
	}
	if !n.RecordTransit(notarymodel.Transit{SessionID: id, Kind: notarymodel.TransitOpen, Level: 3}) {
		t.Fatal("transit not recorded")
	}
	if err := n.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	sock := "--socket=" + d.SocketPath()

	out, errs, code := notaryVerb(t, "query", sock, "--type=mutation")
	if code != 0 || !strings.Contains(out, "networkMutation") || strings.Contains(out, "sessionTransit") {
		t.Fatalf("query --type=mutation: %d %s %s", code, out, errs)
	}
	out, _, code = notaryVerb(t, "query", sock, "--type=transit", "--level=3")
	var e map[string]any
	if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &e) != nil || !strings.Contains(out, id) {
		t.Fatalf("query --type=transit --level=3: %d %s", code, out)
	}
	if out, _, _ = notaryVerb(t, "query", sock, "--type=transit", "--level=5"); strings.TrimSpace(out) != "" {
		t.Errorf("transits at level 5: %s", out)
	}
	if _, errs, code = notaryVerb(t, "query", sock, "--type=bogus"); code == 0 {
		t.Errorf("an unknown type was accepted: %s", errs)
	}
	// A device push (the underlay's record) is its own type, by level.
	push := notarymodel.DevicePush{MutationID: "m-cli", QueueSeq: 3, Proposer: "alice", Tier: "operator", Level: 3,
		Changes: []notarymodel.ContainerChange{{Device: "sw1", Path: "/vlans/vlan[vlan-id=10]", After: []byte(`{"vlan-id":10}`)}}}
	if err := n.RecordDevicePush(context.Background(), push); err != nil {
		t.Fatal(err)
	}
	out, errs, code = notaryVerb(t, "query", sock, "--type=device-push", "--level=3")
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"devicePush"`) || !strings.Contains(out, `"m-cli"`) {
		t.Fatalf("query --type=device-push --level=3: %d %s %s", code, out, errs)
	}
	if out, _, _ = notaryVerb(t, "query", sock, "--type=device-push", "--level=5"); strings.TrimSpace(out) != "" {
		t.Errorf("device pushes at level 5: %s", out)
	}
	if out, _, _ = notaryVerb(t, "query", sock, "--type=mutation"); strings.Contains(out, "devicePush") {
		t.Errorf("--type=mutation lists a device push: %s", out)
	}
	out, errs, code = notaryVerb(t, "get", sock, "--key="+filepath.Join(dir, "notary", "key.pub"), "0")
	if code != 0 || !strings.Contains(out, "inclusion proof: ok") {
		t.Fatalf("get 0: %d %s %s", code, out, errs)
	}
	cpNote, _, code := notaryVerb(t, "checkpoint", sock)
	if code != 0 || !strings.HasPrefix(cpNote, "kedge.notary/cli-node\n") {
		t.Fatalf("checkpoint: %d %q", code, cpNote)
	}
	cpFile := filepath.Join(t.TempDir(), "checkpoint")
	os.WriteFile(cpFile, []byte(cpNote), 0o600)
	logDir := filepath.Join(dir, "notary", "log")
	old := t.TempDir()
	copyTree(t, filepath.Join(dir, "notary"), old)

	// More entries, then stop the daemon and verify offline.
	set("/kedge/routes/route[prefix=10.5.0.0/16][table=254]/config/device", "eth1")
	n.Sync(context.Background())
	newer := n.Checkpoint()
	newerFile := filepath.Join(t.TempDir(), "newer")
	os.WriteFile(newerFile, newer.Note, 0o600)
	d.Shutdown(5 * time.Second)
	out, errs, code = notaryVerb(t, "verify", "--data-dir="+dir, "--checkpoint="+cpFile)
	if code != 0 || !strings.Contains(out, ": ok") || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}

	// An older copy restored: verify against the newer checkpoint fails.
	oldData := t.TempDir()
	copyTree(t, old, filepath.Join(oldData, "notary"))
	if _, errs, code = notaryVerb(t, "verify", "--data-dir="+oldData, "--checkpoint="+newerFile); code != 1 || !strings.Contains(errs, "rolled back") {
		t.Errorf("verify an older copy: %d %s", code, errs)
	}

	// A flipped byte and a truncated tail.
	raw, _ := os.ReadFile(filepath.Join(logDir, ledger.LogFile))
	end := bytes.LastIndex(raw, []byte("— kedge.notary/cli-node"))
	flipped := t.TempDir()
	copyTree(t, filepath.Join(dir, "notary"), filepath.Join(flipped, "notary"))
	b := bytes.Clone(raw)
	b[200] ^= 0x40
	os.WriteFile(filepath.Join(flipped, "notary", "log", ledger.LogFile), b, 0o600)
	if _, errs, code = notaryVerb(t, "verify", "--data-dir="+flipped); code != 1 || !strings.Contains(errs, "damaged at offset") {
		t.Errorf("verify a flipped byte: %d %s", code, errs)
	}
	truncated := t.TempDir()
	copyTree(t, filepath.Join(dir, "notary"), filepath.Join(truncated, "notary"))
	os.WriteFile(filepath.Join(truncated, "notary", "log", ledger.LogFile), raw[:end+10], 0o600)
	if _, errs, code = notaryVerb(t, "verify", "--data-dir="+truncated); code != 1 || !strings.Contains(errs, "truncated") {
		t.Errorf("verify a truncated tail: %d %s", code, errs)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from+"/.", to).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v %s", from, err, out)
	}
}
