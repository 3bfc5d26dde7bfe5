package notary

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// samplePush is a mutation that changed two devices: a VLAN created on
// sw1, a VLAN renamed and a subinterface deleted on sw2.
func samplePush() DevicePush {
	return DevicePush{
		MutationID: "m7", QueueSeq: 12, IntentSeq: 40, Time: time.Unix(1700000000, 7), Proposer: "alice", Tier: "operator", Level: 3,
		Changes: []ContainerChange{
			{Device: "sw2", Path: "/interfaces/interface[name=eth9]/subinterfaces/subinterface[index=20]", Delete: true,
				Before: []byte(`{"config":{"index":20},"index":20}`)},
			{Device: "sw1", Path: "/vlans/vlan[vlan-id=100]", After: []byte(`{"config":{"name":"v100","vlan-id":100},"vlan-id":100}`)},
			{Device: "sw2", Path: "/vlans/vlan[vlan-id=100]", Before: []byte(`{"config":{"name":"old","vlan-id":100},"vlan-id":100}`),
				After: []byte(`{"config":{"name":"v100","vlan-id":100},"vlan-id":100}`)},
		},
	}
}

// checkGolden compares an artifact's JSON with testdata/name (protojson's
// whitespace, which it varies on purpose, normalized).
func checkGolden(t *testing.T, name string, a *qmv1.NetworkMutationArtifact) {
	t.Helper()
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("%s differs (run with -update after checking):\ngot:\n%s\nwant:\n%s", file, got.Bytes(), want)
	}
}

// The artifact of a mutation and of a drift repair, pinned: kind, writer,
// devices, operations and hashes.
func TestBuildDevicePushGolden(t *testing.T) {
	checkGolden(t, "device_push_mutation.golden", BuildDevicePush(samplePush(), fidelity(t, 3)))
	r := DevicePush{MutationID: "repair/sw1/3", Repair: true, Time: time.Unix(1700000100, 0), Proposer: "kedge", Tier: "master", Level: 4,
		Changes: []ContainerChange{{Device: "sw1", Path: "/vlans/vlan[vlan-id=100]",
			Before: []byte(`{"config":{"name":"tampered","vlan-id":100},"vlan-id":100}`),
			After:  []byte(`{"config":{"name":"v100","vlan-id":100},"vlan-id":100}`)}}}
	checkGolden(t, "device_push_repair.golden", BuildDevicePush(r, fidelity(t, 4)))
	f := BuildDevicePush(DevicePush{MutationID: "m9", QueueSeq: 3, Failed: true, Reason: "sw2: rejected: no such port",
		Proposer: "bob", Tier: "site-owner", Level: 2, Changes: samplePush().Changes[1:2]}, fidelity(t, 2))
	if f.GetDevicePush().GetResult() != qmv1.DevicePushResult_DEVICE_PUSH_RESULT_FAILED || f.GetDevicePush().GetReason() == "" {
		t.Errorf("a failed push is recorded as %v", f.GetDevicePush())
	}
}

// The hashes are plain SHA-256 of the canonical JSON, and changes_sha256
// follows the documented encoding, so a verifier can recompute both
// without Kedge's code.
func TestDevicePushHashesAsDocumented(t *testing.T) {
	p := samplePush()
	a := BuildDevicePush(p, fidelity(t, 1))
	var enc []byte
	uv := func(n int) { enc = binary.AppendUvarint(enc, uint64(n)) }
	for i, c := range p.Changes {
		lc := a.GetChanges()[i]
		var before, after []byte
		if c.Before != nil {
			h := sha256.Sum256(c.Before)
			before = h[:]
		}
		if !c.Delete {
			h := sha256.Sum256(c.After)
			after = h[:]
		}
		if !bytes.Equal(lc.GetBeforeSha256(), before) || !bytes.Equal(lc.GetAfterSha256(), after) {
			t.Errorf("change %d: hashes %x/%x, want %x/%x", i, lc.GetBeforeSha256(), lc.GetAfterSha256(), before, after)
		}
		if lc.GetDevice() != c.Device || lc.GetPath() != c.Path {
			t.Errorf("change %d names %s %s", i, lc.GetDevice(), lc.GetPath())
		}
		op := byte(1)
		if c.Delete {
			op = 2
		}
		uv(len(c.Device))
		enc = append(enc, c.Device...)
		uv(len(c.Path))
		enc = append(enc, c.Path...)
		enc = append(enc, op)
		uv(len(before))
		enc = append(enc, before...)
		uv(len(after))
		enc = append(enc, after...)
	}
	want := sha256.Sum256(enc)
	if !bytes.Equal(a.GetChangesSha256(), want[:]) || !bytes.Equal(DevicePushDigest(p.Changes), want[:]) {
		t.Errorf("changes_sha256 %x, DevicePushDigest %x, want %x", a.GetChangesSha256(), DevicePushDigest(p.Changes), want)
	}
	// The device is part of the digest: the same container on another
	// device is another change.
	q := samplePush()
	q.Changes[1].Device = "sw3"
	if bytes.Equal(DevicePushDigest(q.Changes), want[:]) {
		t.Error("moving a change to another device keeps the digest")
	}
	// sw2's VLAN 100 after equals sw1's: same canonical JSON, same hash.
	if !bytes.Equal(a.GetChanges()[1].GetAfterSha256(), a.GetChanges()[2].GetAfterSha256()) {
		t.Error("equal containers hash differently")
	}
}

// Without payload hashing at most MaxListedChanges containers are listed;
// with it (level 1) all are; the count and digest always cover all.
func TestBuildDevicePushListingByFidelity(t *testing.T) {
	p := DevicePush{MutationID: "big", QueueSeq: 1, Proposer: "alice", Tier: "master", Level: 5}
	for d := range 3 {
		for v := range MaxListedChanges/2 + 1 {
			p.Changes = append(p.Changes, ContainerChange{Device: fmt.Sprintf("sw%d", d), Path: fmt.Sprintf("/vlans/vlan[vlan-id=%d]", v+1),
				After: fmt.Appendf(nil, `{"vlan-id":%d}`, v+1)})
		}
	}
	for _, c := range []struct {
		level     uint8
		listed    int
		truncated bool
	}{{5, MaxListedChanges, true}, {4, MaxListedChanges, true}, {3, MaxListedChanges, true}, {2, MaxListedChanges, true}, {1, len(p.Changes), false}} {
		a := BuildDevicePush(p, fidelity(t, c.level))
		if len(a.GetChanges()) != c.listed || a.GetChangesTruncated() != c.truncated {
			t.Errorf("level %d: %d listed, truncated %v; want %d, %v", c.level, len(a.GetChanges()), a.GetChangesTruncated(), c.listed, c.truncated)
		}
		if a.GetChangeCount() != uint32(len(p.Changes)) || !bytes.Equal(a.GetChangesSha256(), DevicePushDigest(p.Changes)) {
			t.Errorf("level %d: count %d or digest does not cover all %d changes", c.level, a.GetChangeCount(), len(p.Changes))
		}
		if got := a.GetDevicePush().GetDevices(); len(got) != 3 || got[0] != "sw0" || got[2] != "sw2" {
			t.Errorf("level %d: devices %v", c.level, got)
		}
	}
}

func TestDevicePushValidate(t *testing.T) {
	ok := samplePush()
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid push: %v", err)
	}
	empty := DevicePush{MutationID: "m0", QueueSeq: 2, Level: 5} // executed, changed nothing
	if err := empty.Validate(); err != nil {
		t.Errorf("a push that changed nothing: %v", err)
	}
	for name, mod := range map[string]func(*DevicePush){
		"no id":                 func(p *DevicePush) { p.MutationID = "" },
		"level 0":               func(p *DevicePush) { p.Level = 0 },
		"level 6":               func(p *DevicePush) { p.Level = 6 },
		"repair with a seq":     func(p *DevicePush) { p.Repair = true },
		"no device":             func(p *DevicePush) { p.Changes[0].Device = "" },
		"no path":               func(p *DevicePush) { p.Changes[1].Path = "" },
		"delete with after":     func(p *DevicePush) { p.Changes[0].After = []byte(`{}`) },
		"replace with no value": func(p *DevicePush) { p.Changes[1].After = nil },
	} {
		p := samplePush()
		mod(&p)
		if err := p.Validate(); !errors.Is(err, ErrInvalidPush) {
			t.Errorf("%s: %v, want ErrInvalidPush", name, err)
		}
	}
}

func TestTypeOfDevicePush(t *testing.T) {
	push := &qmv1.LogEntry{Artifact: &qmv1.LogEntry_NetworkMutation{NetworkMutation: BuildDevicePush(samplePush(), fidelity(t, 5))}}
	commit := &qmv1.LogEntry{Artifact: &qmv1.LogEntry_NetworkMutation{NetworkMutation: BuildMutation(mutation(1), fidelity(t, 5))}}
	if got := Type(push); got != qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH {
		t.Errorf("device push typed %v", got)
	}
	if got := Type(commit); got != qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION {
		t.Errorf("tree commit typed %v", got)
	}
	seen := map[string]bool{}
	for _, k := range []struct {
		id  string
		seq uint64
	}{{"m1", 12}, {"m11", 2}, {"m1", 1}, {"m1\x001", 2}, {"m1", 0}, {"repair/sw1/1", 0}} {
		key := PushKey(k.id, k.seq)
		if seen[key] {
			t.Errorf("push key of %q/%d collides", k.id, k.seq)
		}
		seen[key] = true
	}
}
