package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// The posture walk's Shellstream and notary-log checks: at every level
// each node opens one session of each type to the next node with the
// real `kedge-daemon shell` verb, as identities a real SPIRE agent issues
// (one uid per tier), and the receiving node's notary log (read with
// `kedge-daemon notary query`) must hold exactly the transits the level's
// fidelity samples, with the level's payload hashing and frame headers,
// and the level's posture transition and forensic snapshot.

// walkListenPort is each node's TLS gNMI/Shellstream port on its lan
// address, inside its own namespace.
const walkListenPort = "9339"

// walkTierUIDs are the uids the SPIRE agent's unix attestor maps to each
// tier's identity; master is root (the test itself, registered by
// startSPIRE), the others are uids no account uses.
var walkTierUIDs = map[string]int{"master": 0, "site-owner": 64802, "operator": 64803, "observer": 64804}

// walkIDs are the tiers' SPIFFE IDs.
var walkIDs = map[string]string{"master": "spiffe://kedge.test/ops/master", "site-owner": "spiffe://kedge.test/ops/owner",
	"operator": "spiffe://kedge.test/ops/operator", "observer": "spiffe://kedge.test/ops/observer"}

// walkShell is what the walk's Shellstream clients need.
type walkShell struct {
	bin, agentSock string
	ca             map[string]string // node -> a world-readable copy of its TLS certificate
	// What the walk saw: grants, denials, sessions recorded in the logs.
	granted, denied, recorded int
}

// walkSPIRE starts a real SPIRE server and agent and registers one uid
// per tier; it returns the agent's Workload API socket, reachable by the
// non-root uids.
func walkSPIRE(t *testing.T) string {
	t.Helper()
	sp := startSPIRE(t) // registers this process's uid (root) as walkIDs["master"]
	serverBin, agentBin := spireBins(t)
	for tier, uid := range walkTierUIDs {
		if uid == 0 {
			continue
		}
		spireRun(t, serverBin, "entry", "create", "-socketPath", filepath.Join(sp.dir, "server.sock"),
			"-parentID", "spiffe://kedge.test/host", "-spiffeID", walkIDs[tier], "-selector", "unix:uid:"+strconv.Itoa(uid))
	}
	// The agent's socket sits in a 0700 directory: let the tiers' uids
	// through to it (the socket itself is open to all).
	if err := os.Chmod(sp.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	// The agent issues the new entries' SVIDs once it has synced them.
	for tier, uid := range walkTierUIDs {
		u := strconv.Itoa(uid)
		meshWait(t, "the agent to issue "+tier+"'s X.509-SVID", 60*time.Second, func() bool {
			return exec.Command("setpriv", "--reuid="+u, "--regid="+u, "--clear-groups",
				agentBin, "api", "fetch", "x509", "-socketPath", sp.agentSock).Run() == nil
		})
	}
	return sp.agentSock
}

// walkAttempt is one handshake's outcome: "grant VERIFICATION CAPS" or
// "deny", as posture-walk.yml writes it, and the granted session's id.
type walkAttempt struct {
	typ, outcome, id string
}

var grantLine = regexp.MustCompile(`session (\S+) granted to (\S+): (\S*), effective level (\d), VERIFICATION_MODE_(\w+),`)

// shell runs `kedge-daemon shell` in from's namespace as the tier's uid
// against addr (the next node's lan address, or a unix socket for the
// console), echoing one line; it returns the outcome.
func (ws *walkShell) shell(t *testing.T, from *walkNode, addr, to, typ, tier string, level int) walkAttempt {
	t.Helper()
	args := []string{"--net=/run/netns/" + from.ns}
	if uid := walkTierUIDs[tier]; uid != 0 {
		u := strconv.Itoa(uid)
		args = append(args, "setpriv", "--reuid="+u, "--regid="+u, "--clear-groups")
	}
	args = append(args, ws.bin, "shell", "--addr", addr, "--audience", "kedge/"+to, "--type", typ,
		"--node", from.name, "--cluster", "walk", "--level", strconv.Itoa(level))
	if !strings.HasPrefix(addr, "unix:") {
		args = append(args, "--tls-ca", ws.ca[to], "--tls-server-name", to)
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Env = append(os.Environ(), "SPIFFE_ENDPOINT_SOCKET=unix://"+ws.agentSock)
	line := fmt.Sprintf("walk %d %s %s->%s\n", level, typ, from.name, to)
	cmd.Stdin = strings.NewReader(line)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		m := grantLine.FindStringSubmatch(errOut.String())
		if m == nil {
			t.Errorf("%s %s session %s->%s at %d: exit 0 without a grant:\n%s", tier, typ, from.name, to, level, errOut.String())
			return walkAttempt{typ: typ, outcome: "?"}
		}
		if m[2] != walkIDs[tier] || m[4] != strconv.Itoa(level) || out.String() != line {
			t.Errorf("%s %s session %s->%s at %d: granted to %s at effective level %s, echoed %q:\n%s",
				tier, typ, from.name, to, level, m[2], m[4], out.String(), errOut.String())
		}
		ws.granted++
		return walkAttempt{typ: typ, outcome: "grant " + strings.ToLower(m[5]) + " " + m[3], id: m[1]}
	case errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(errOut.String(), "denied: DENY_REASON_POSTURE"):
		ws.denied++
		return walkAttempt{typ: typ, outcome: "deny"}
	}
	t.Errorf("%s %s session %s->%s at %d: %v\n%s", tier, typ, from.name, to, level, err, errOut.String())
	return walkAttempt{typ: typ, outcome: "?"}
}

// handshakes attempts the level's sessions from nd: one of each type to
// next over the lan and, where the spec lists them, console sessions on
// nd's own socket; it checks each outcome against the spec and returns
// the attempts made at next and at nd itself.
func (ws *walkShell) handshakes(t *testing.T, spec walkSpec, nd, next *walkNode, level int) (remote, console []walkAttempt) {
	t.Helper()
	h := spec.Handshakes[level]
	for _, typ := range slices.Sorted(maps.Keys(h.Remote)) {
		a := ws.shell(t, nd, next.addr+":"+walkListenPort, next.name, typ, spec.SessionTiers[typ], level)
		if a.outcome != h.Remote[typ] {
			t.Errorf("level %d: %s session %s->%s as %s: %s, want %s", level, typ, nd.name, next.name, spec.SessionTiers[typ], a.outcome, h.Remote[typ])
		}
		remote = append(remote, a)
	}
	for _, typ := range slices.Sorted(maps.Keys(h.Console)) {
		a := ws.shell(t, nd, "unix://"+nd.sock, nd.name, typ, "master", level)
		if a.outcome != h.Console[typ] {
			t.Errorf("level %d: console %s session on %s: %s, want %s", level, typ, nd.name, a.outcome, h.Console[typ])
		}
		console = append(console, a)
	}
	return remote, console
}

// notaryLog reads nd's notary log since a time with the notary query
// verb.
func (ws *walkShell) notaryLog(t *testing.T, nd *walkNode, since time.Time, types string) []*qmv1.LogEntry {
	t.Helper()
	out, err := exec.Command(ws.bin, "notary", "query", "--socket", nd.sock, "--type", types,
		"--since", strconv.FormatInt(since.UnixNano(), 10)).Output()
	if err != nil {
		t.Fatalf("node %s: kedge-daemon notary query: %v", nd.name, err)
	}
	var es []*qmv1.LogEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		e := &qmv1.LogEntry{}
		if err := protojson.Unmarshal(sc.Bytes(), e); err != nil {
			t.Fatalf("node %s: notary query line %q: %v", nd.name, sc.Text(), err)
		}
		es = append(es, e)
	}
	return es
}

// checkNotaryLog checks nd's log since the step began at level: the
// sessions it received are recorded (open, grant, close) exactly when the
// level's share samples them, each denied attempt ends in a DENY with the
// posture reason, every transit carries the level and its fidelity, a
// metadata hash exactly when the level hashes payloads and frame headers
// on the sessions it governs exactly when the level records them; the
// level change is one posture transition, with a forensic snapshot
// exactly when the level asks for one. The notary flushes from its own
// writer, so it waits (bounded) until the expected transits are in.
func (ws *walkShell) checkNotaryLog(t *testing.T, spec walkSpec, nd *walkNode, level int, since time.Time, changed bool, attempts []walkAttempt) {
	t.Helper()
	ls := spec.Levels[level]
	pct := uint8(ls["sampling-percent"].(int))
	hashing, headers := ls["payload-hashing"].(bool), ls["frame-headers"].(bool)
	wantKinds := map[string]string{}
	denied := 0
	for _, a := range attempts {
		switch {
		case a.id != "" && notarymodel.Sampled(a.id, pct):
			wantKinds[a.id] = "[TRANSIT_KIND_OPEN TRANSIT_KIND_GRANT TRANSIT_KIND_CLOSE]"
		case a.id == "" && pct == 100:
			denied++
		}
	}
	var es []*qmv1.LogEntry
	deadline := time.Now().Add(20 * time.Second)
	for {
		es = ws.notaryLog(t, nd, since, "transit")
		if len(es) >= 3*len(wantKinds)+2*denied || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the notary's flushes
	}
	kinds := map[string][]string{}
	for _, e := range es {
		st := e.GetSessionTransit()
		f := e.GetFidelity()
		kinds[st.GetSessionId()] = append(kinds[st.GetSessionId()], st.GetKind().String())
		if e.GetPostureLevel() != uint32(level) || st.GetPostureLevelAtTransit() != uint32(level) ||
			f.GetSamplingPercent() != uint32(pct) || f.GetPayloadHashing() != hashing || f.GetFrameHeaders() != headers {
			t.Errorf("node %s at level %d: transit recorded at level %d (%d at transit) with fidelity %v", nd.name, level,
				e.GetPostureLevel(), st.GetPostureLevelAtTransit(), f)
		}
		if got := st.GetMetadataSha256(); hashing != (got != nil) || hashing && !bytes.Equal(got, notarymodel.TransitDigest(st)) {
			t.Errorf("node %s at level %d: %s transit metadata hash %x (payload hashing %v)", nd.name, level, st.GetKind(), got, hashing)
		}
		// Frame headers ride on the transits that follow frames (the
		// grant and the close) of sessions governed at the level.
		if st.GetKind() == qmv1.TransitKind_TRANSIT_KIND_CLOSE && headers != (len(st.GetFrameHeaders()) > 0) {
			t.Errorf("node %s at level %d: close of %s carries %d frame headers (frame headers %v)", nd.name, level,
				st.GetSessionId(), len(st.GetFrameHeaders()), headers)
		}
		if st.GetKind() == qmv1.TransitKind_TRANSIT_KIND_DENY && !strings.Contains(st.GetReason(), "posture level") {
			t.Errorf("node %s at level %d: deny reason %q", nd.name, level, st.GetReason())
		}
	}
	gotDenied := 0
	for id, k := range kinds {
		if want, ok := wantKinds[id]; ok {
			if fmt.Sprint(k) != want {
				t.Errorf("node %s at level %d: sampled session %s recorded as %v, want %s", nd.name, level, id, k, want)
			}
			delete(wantKinds, id)
			ws.recorded++
			continue
		}
		if k[len(k)-1] == "TRANSIT_KIND_DENY" {
			gotDenied++
			continue
		}
		t.Errorf("node %s at level %d: session %s recorded as %v: not one the level samples", nd.name, level, id, k)
	}
	if len(wantKinds) > 0 {
		t.Errorf("node %s at level %d: sampled sessions not recorded: %v", nd.name, level, slices.Collect(maps.Keys(wantKinds)))
	}
	if gotDenied != denied {
		t.Errorf("node %s at level %d: %d denials recorded, want %d", nd.name, level, gotDenied, denied)
	}

	// The level change itself: one transition artifact; a forensic
	// snapshot exactly where the level's accord asks for it.
	wantTransitions, wantForensic := 0, 0
	if changed {
		wantTransitions = 1
		if ls["forensic-snapshot"].(bool) {
			wantForensic = 1
		}
	}
	var transitions, forensic int
	deadline = time.Now().Add(20 * time.Second)
	for {
		transitions, forensic = 0, 0
		for _, e := range ws.notaryLog(t, nd, since, "transition,forensic") {
			switch {
			case e.GetPostureTransition() != nil:
				if pt := e.GetPostureTransition(); pt.GetToLevel() != uint32(level) || pt.GetResult() != "ok" {
					t.Errorf("node %s at level %d: transition artifact %v", nd.name, level, pt)
				}
				transitions++
			case e.GetForensicSnapshot() != nil:
				forensic++
			}
		}
		if transitions >= wantTransitions && forensic >= wantForensic || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the notary's batched flushes
	}
	if transitions != wantTransitions || forensic != wantForensic {
		t.Errorf("node %s at level %d: %d transition and %d forensic artifacts, want %d and %d", nd.name, level,
			transitions, forensic, wantTransitions, wantForensic)
	}
}
