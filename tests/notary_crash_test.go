package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

const notaryCrashEnv = "KEDGE_NOTARY_CRASH_DIR"

// crashRoute is the leaf every Set of the crash child changes.
const crashRoute = "/kedge/routes/route[prefix=10.77.0.0/24][table=254]"

func crashDevice(i int) string { return "d" + strconv.Itoa(i) }

// notaryCrashCfg is the crash child's daemon: no dataplane, the unix
// socket in the data dir.
func notaryCrashCfg(t testing.TB, dir string) config.Config {
	t.Helper()
	c := config.Defaults()
	c.DataDir, c.Listen, c.Socket, c.NodeName = dir, "", filepath.Join(dir, "kedge.sock"), "crash-node"
	c.Dataplane, c.ShmPath, c.BPFPinDir, c.MetricsListen = "off", "off", "off", "off"
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNotaryCrashChild is the child side of TestNotaryDurabilityUnderKill:
// a daemon whose client Sets one leaf after another (every fifth Set also
// rewrites 40 other routes) and prints "ack N" when Set N returned. It
// does nothing unless started by the parent.
func TestNotaryCrashChild(t *testing.T) {
	dir := os.Getenv(notaryCrashEnv)
	if dir == "" {
		t.Skip("child process of TestNotaryDurabilityUnderKill; runs only when started by it")
	}
	level, _ := strconv.Atoi(os.Getenv(notaryCrashEnv + "_LEVEL"))
	first, _ := strconv.Atoi(os.Getenv(notaryCrashEnv + "_FIRST"))
	c, _ := startKedge(t, notaryCrashCfg(t, dir))
	setLevel(t, c, uint64(level))
	os.Stdout.WriteString("ready\n")
	for i := first; ; i++ {
		req := &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, crashRoute+"/config"),
			Val: jsonVal([]byte(fmt.Sprintf(`{"prefix":"10.77.0.0/24","table":254,"device":%q}`, crashDevice(i))))}}}
		if i%5 == 0 {
			var rs []rt
			for k := 0; k < 40; k++ {
				rs = append(rs, rt{prefix: fmt.Sprintf("10.78.%d.0/24", k), table: 254, dev: crashDevice(i)})
			}
			req.Update = append(req.Update, &gpb.Update{Path: path(t, "/kedge/routes"), Val: jsonVal(routesJSON(rs))})
		}
		if _, err := c.Set(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("ack " + strconv.Itoa(i) + "\n")
	}
}

// TestNotaryDurabilityUnderKill SIGKILLs a daemon while a client commits,
// at random moments and at the fidelities of levels 5 (batched), 2
// (immediate) and 1 (every record), and checks after each kill that every
// Set the client saw acknowledged has exactly one NetworkMutationArtifact
// in the notary log, with the writer and the value before and after, and
// that the log verifies.
func TestNotaryDurabilityUnderKill(t *testing.T) {
	if os.Getenv(notaryCrashEnv) != "" {
		t.Skip("inside the child")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 14))
	levels := []int{5, 2, 1}
	next, lastAck := 1, 0
	acked := map[int]bool{}
	const trials = 24
	var recovered int
	for trial := 0; trial < trials; trial++ {
		level := levels[trial%len(levels)]
		cmd := exec.Command(os.Args[0], "-test.run=^TestNotaryCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), notaryCrashEnv+"="+dir, notaryCrashEnv+"_LEVEL="+strconv.Itoa(level),
			notaryCrashEnv+"_FIRST="+strconv.Itoa(next))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(40)
		sc := bufio.NewScanner(out)
		acks, killed := 0, false
		for sc.Scan() {
			n, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			lastAck, _ = strconv.Atoi(n)
			acked[lastAck] = true
			if acks++; acks == killAfter && !killed {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				// Acks already in the pipe count too.
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("trial %d: child exited after %d acks: %s", trial, acks, stderr.String())
		}
		recovered = checkNotaryAfterKill(t, dir, trial, lastAck, acked)
		next = lastAck + 2 // the unacknowledged Set after lastAck may or may not have committed
	}
	if recovered == 0 {
		t.Errorf("no trial needed the store's log: the kills never hit a commit the notary had not flushed")
	}
	t.Logf("%d kills survived at levels 5, 2 and 1; %d Sets acknowledged; %d of their artifacts were rebuilt from the store's log", trials, len(acked), recovered)
}

// checkNotaryAfterKill restarts the daemon on the killed one's data and
// checks the notary log. It returns how many of the Sets' artifacts were
// rebuilt from the store's log so far.
func checkNotaryAfterKill(t *testing.T, dir string, trial, lastAck int, acked map[int]bool) int {
	t.Helper()
	d, err := server.Start(notaryCrashCfg(t, dir), quietLog(t))
	if err != nil {
		t.Fatalf("trial %d: restart after kill: %v", trial, err)
	}
	n := d.Notary()
	if err := n.Sync(context.Background()); err != nil {
		t.Fatalf("trial %d: %v", trial, err)
	}
	var es []*qmv1.LogEntry
	for start := int64(0); ; {
		page, next, err := n.List(notary.Query{Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION}, Start: start, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, page...)
		if next == 0 {
			break
		}
		start = next
	}
	vkey := n.VerifierKey()
	if err := d.Shutdown(5 * time.Second); err != nil {
		t.Fatalf("trial %d: shutdown: %v", trial, err)
	}
	// Which device values did the artifacts record, with which before?
	devPath := crashRoute + "/config/device"
	hashes := map[string]int{}
	for i := 1; i <= lastAck+1; i++ {
		hashes[string(notarymodel.ValueHash(tree.String(crashDevice(i))))] = i
	}
	seen := map[int]int{}
	recovered := 0
	for _, e := range es {
		m := e.GetNetworkMutation()
		for _, c := range m.GetChanges() {
			if c.GetPath() != devPath {
				continue
			}
			i, ok := hashes[string(c.GetAfterSha256())]
			if !ok {
				continue
			}
			seen[i]++
			if m.GetRecovered() {
				recovered++
			}
			if w := m.GetWriter(); w.GetIdentity() != "uid:0" || w.GetTier() != "master" {
				t.Errorf("trial %d: Set %d recorded as written by %v", trial, i, w)
			}
			if i > 1 && c.GetBeforeSha256() != nil {
				if b, ok := hashes[string(c.GetBeforeSha256())]; !ok || b >= i {
					t.Errorf("trial %d: Set %d recorded with the value before of Set %d", trial, i, b)
				}
			}
		}
	}
	for i := range acked {
		if seen[i] != 1 {
			t.Fatalf("trial %d: acknowledged Set %d has %d artifacts in the notary log, want 1", trial, i, seen[i])
		}
	}
	for i, k := range seen {
		if k > 1 {
			t.Fatalf("trial %d: Set %d has %d artifacts, want at most 1", trial, i, k)
		}
	}
	v, _, err := notary.LoadVerifier(filepath.Join(dir, "notary"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != strings.SplitN(vkey, "+", 2)[0] {
		t.Fatalf("trial %d: key file and daemon disagree", trial)
	}
	if _, err := ledger.Verify(filepath.Join(dir, "notary", "log"), v, nil); err != nil {
		t.Fatalf("trial %d: verify the notary log: %v", trial, err)
	}
	return recovered
}
