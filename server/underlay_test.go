package server

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/underlay"
)

// The adapter carries every field of the underlay's record into the
// notary's, a delete as a delete, and what it produces validates; an
// operation it does not know is refused by the notary, not guessed.
func TestDevicePushFromUnderlay(t *testing.T) {
	at := time.Unix(1700000000, 0)
	m := underlay.ExecutedMutation{ID: "m1", Sequence: 4, IntentSequence: 17, Failed: true, Reason: "sw2: rejected",
		Time: at, Proposer: "alice", Tier: "operator", Level: 3, Changes: []underlay.DeviceChange{
			{Device: "sw1", Op: "delete", Path: "/vlans/vlan[vlan-id=9]", Before: []byte(`{"vlan-id":9}`)},
			{Device: "sw1", Op: "replace", Path: "/vlans/vlan[vlan-id=10]", After: []byte(`{"vlan-id":10}`)},
		}}
	want := notarymodel.DevicePush{MutationID: "m1", QueueSeq: 4, IntentSeq: 17, Failed: true, Reason: "sw2: rejected",
		Time: at, Proposer: "alice", Tier: "operator", Level: 3, Changes: []notarymodel.ContainerChange{
			{Device: "sw1", Path: "/vlans/vlan[vlan-id=9]", Delete: true, Before: []byte(`{"vlan-id":9}`)},
			{Device: "sw1", Path: "/vlans/vlan[vlan-id=10]", After: []byte(`{"vlan-id":10}`)},
		}}
	got, err := devicePush(m)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the converted push does not validate: %v", err)
	}
	r, err := devicePush(underlay.ExecutedMutation{ID: "repair/sw1/2", Repair: true, Proposer: "kedge", Tier: "master", Level: 5})
	if err != nil || !r.Repair || r.Validate() != nil {
		t.Errorf("repair: %+v %v %v", r, err, r.Validate())
	}
	m.Changes[1].Op = "merge"
	if _, err := devicePush(m); !errors.Is(err, notarymodel.ErrInvalidPush) {
		t.Errorf("an unknown operation: %v, want ErrInvalidPush", err)
	}
}
