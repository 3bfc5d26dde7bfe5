package tests

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	"github.com/guildhouse-co/kedge/server/config"
)

// TestKedgectlNotary: kedgectl notary query lists what the node recorded
// (its config mutations and posture transitions) with a progress bar, and
// notary verify checks every entry against the signed checkpoint with the
// notary's key, proves the log extends a checkpoint kept earlier, and
// fails on a forged one.
func TestKedgectlNotary(t *testing.T) {
	bin := gcliBuild(t, t.TempDir(), "github.com/guildhouse-co/kedge/server/cmd/kedgectl")
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	writeSecret(t, pol, fmt.Sprintf("tiers:\n  master:\n    write: [\"/\"]\nunix:\n  uids:\n    %d: master\n", os.Getuid()))
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket = dir, "", filepath.Join(dir, "kedge.sock")
	cfg.NodeName, cfg.Dataplane, cfg.MetricsListen, cfg.Policy = "notary-node", "off", "off", pol
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c, _ := startKedge(t, cfg)
	addr := []string{"--addr", "unix://" + cfg.Socket}
	env := []string{"KEDGE_ADDR=", "KEDGE_USER=", "KEDGE_PASSWORD="}
	key := filepath.Join(dir, "notary", "key.pub")

	entries := func() (muts, trans int) {
		var es []map[string]any
		if err := json.Unmarshal([]byte(ctlMust(t, bin, env, append(addr, "notary", "query", "-o", "json")...).stdout), &es); err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if _, ok := e["networkMutation"]; ok {
				muts++
			}
			if _, ok := e["postureTransition"]; ok {
				trans++
			}
		}
		return
	}
	// Each level's transition finishes before the next Set: the engine
	// may otherwise go 5 → 3 at once, and the query below looks for 5 → 4.
	for _, l := range []uint64{4, 3} {
		setLevel(t, c, l)
		want := strconv.FormatUint(l, 10)
		watchTree(t, c, "the transition to "+want, func() bool {
			return get1(t, c, "/kedge/posture/state/last-transition/to-level") == want &&
				get1(t, c, "/kedge/posture/state/last-transition/result") == "ok"
		})
	}
	meshWait(t, "two mutations and the transitions recorded", 30*time.Second, func() bool {
		m, tr := entries()
		return m >= 2 && tr >= 3
	})
	// A checkpoint kept now, for later.
	cc := ssUnix(t, cfg.Socket)
	cp, err := notaryv1.NewNotaryServiceClient(cc).GetCheckpoint(rpcCtx(t), &notaryv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), "kept.note")
	writeSecret(t, kept, string(cp.GetNote()))
	setLevel(t, c, 5)
	meshWait(t, "the log to grow past the kept checkpoint", 30*time.Second, func() bool {
		cur, err := notaryv1.NewNotaryServiceClient(cc).GetCheckpoint(rpcCtx(t), &notaryv1.GetCheckpointRequest{})
		return err == nil && cur.GetTreeSize() > cp.GetTreeSize()
	})

	q := ctlMust(t, bin, env, append(addr, "notary", "query", "--type", "transition,mutation")...)
	if !strings.Contains(q.stdout, "INDEX  EVENT") || !strings.Contains(q.stdout, "transition") || !strings.Contains(q.stdout, "mutation") ||
		!strings.Contains(q.stdout, "5 → 4 ok") {
		t.Errorf("notary query:\n%s", q.stdout)
	}
	if !strings.Contains(q.stderr, "entries scanned") || !strings.Contains(q.stderr, "100%") {
		t.Errorf("notary query progress:\n%s", q.stderr)
	}
	if q := ctlMust(t, bin, env, append(addr, "notary", "query", "--type", "mutation", "--level", "3")...); strings.Contains(q.stdout, "transition") {
		t.Errorf("a transition in a mutation query:\n%s", q.stdout)
	}

	v := ctlMust(t, bin, env, append(addr, "notary", "verify", "--key", key, "--checkpoint", kept, "-o", "json")...)
	var res struct {
		Entries uint64 `json:"entries"`
		Size    int64  `json:"checkpoint-size"`
		Extends *int64 `json:"extends-size"`
		KeyFrom string `json:"key-from"`
	}
	if err := json.Unmarshal([]byte(v.stdout), &res); err != nil {
		t.Fatalf("verify -o json: %v\n%s", err, v.stdout)
	}
	if res.Entries == 0 || int64(res.Entries) != res.Size || res.Extends == nil || uint64(*res.Extends) != cp.GetTreeSize() || res.KeyFrom != key {
		t.Errorf("verify: %+v (kept checkpoint size %d)", res, cp.GetTreeSize())
	}
	if !strings.Contains(v.stderr, "entries verified") || !strings.Contains(v.stderr, "100%") {
		t.Errorf("verify progress:\n%s", v.stderr)
	}

	// A forged kept checkpoint (its root changed) fails its signature.
	lines := strings.Split(string(cp.GetNote()), "\n")
	root := []byte(lines[2])
	root[0] ^= 1
	lines[2] = string(root)
	forged := filepath.Join(t.TempDir(), "forged.note")
	writeSecret(t, forged, strings.Join(lines, "\n"))
	if r := kedgectl(t, bin, env, "", append(addr, "notary", "verify", "--key", key, "--checkpoint", forged)...); r.code != 1 ||
		!strings.Contains(r.stderr, "given checkpoint") {
		t.Errorf("forged checkpoint: exit %d\n%s", r.code, r.stderr)
	}
	// Another key of the same name does not verify this log.
	name, _, _ := strings.Cut(mustRead(t, key), "+")
	_, vk, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "other.pub")
	writeSecret(t, otherKey, vk+"\n")
	if r := kedgectl(t, bin, env, "", append(addr, "notary", "verify", "--key", otherKey)...); r.code != 1 ||
		!strings.Contains(r.stderr, "verify the checkpoint") {
		t.Errorf("wrong key: exit %d\n%s", r.code, r.stderr)
	}
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
