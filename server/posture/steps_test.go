package posture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/shmtest"
	"github.com/guildhouse-co/kedge/models/accord"
)

func TestForensicSnapshotRecordsTheTree(t *testing.T) {
	st := openStore(t)
	fillTree(t, st, 3, 5)
	var emitted []byte
	s := ForensicStep(st, func(_ context.Context, seq uint64, rec []byte) error {
		if seq != 9 {
			t.Errorf("emitted seq %d, want 9", seq)
		}
		emitted = rec
		return nil
	})
	a, _ := accord.Default(1)
	if err := s.Apply(context.Background(), Transition{Seq: 9, From: 5, To: 1, Accord: a}); err != nil {
		t.Fatal(err)
	}
	if err := s.(Background).Wait(); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadForensic(st)
	if err != nil || rec == nil {
		t.Fatalf("no forensic record in meta: %v", err)
	}
	if string(rec) != string(emitted) {
		t.Error("emitted record differs from the stored one")
	}
	var doc struct {
		Seq    uint64          `json:"seq"`
		Mesh   json.RawMessage `json:"mesh"`
		Routes json.RawMessage `json:"routes"`
		Sum    string          `json:"sha256"`
	}
	if err := json.Unmarshal(rec, &doc); err != nil {
		t.Fatalf("record is not JSON: %v", err)
	}
	if !strings.Contains(string(doc.Routes), "10.1.4.0/24") || !strings.Contains(string(doc.Mesh), "peer2") {
		t.Errorf("record misses routes or peers: %.300s", rec)
	}
	body := string(rec[:strings.LastIndex(string(rec), `,"sha256"`)])
	sum := sha256.Sum256([]byte(body))
	if doc.Sum != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %s does not match the content", doc.Sum)
	}
}

type bpfRec struct{ got []bpfmap.Config }

func (r *bpfRec) Set(_ context.Context, c bpfmap.Config) error { r.got = append(r.got, c); return nil }

func TestGateSteps(t *testing.T) {
	w := &shmtest.Writer{}
	b := &bpfRec{}
	base := bpfmap.Config{CgroupPath: "/sys/fs/cgroup/unified/x"}
	for l := accord.MaxLevel; l >= accord.MinLevel; l-- {
		a, _ := accord.Default(l)
		tr := Transition{From: 5, To: l, Accord: a}
		if err := ShmStep(w).Apply(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
		if err := BPFMapStep(b, base).Apply(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
		if got, want := w.State(), (shm.Config{Level: l, Flags: uint32(6 - l)}); got != want {
			t.Errorf("level %d: shm %+v, want %+v (flow policy %s)", l, got, want, a.VPPFlowPolicy)
		}
		if got := b.got[len(b.got)-1]; got.Level != l || got.CgroupPath != base.CgroupPath {
			t.Errorf("level %d: bpf %+v", l, got)
		}
	}
}
