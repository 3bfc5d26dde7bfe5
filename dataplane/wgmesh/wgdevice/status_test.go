package wgdevice

import (
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestDeriveState(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	b := &Backend{opts: Options{StaleAfter: 3 * time.Minute, FailAfter: 30 * time.Second}}
	tests := []struct {
		name      string
		handshake time.Time
		since     time.Time
		want      wgmesh.PeerState
	}{
		{"fresh handshake", now.Add(-10 * time.Second), now.Add(-time.Hour), wgmesh.StateUp},
		{"old handshake", now.Add(-4 * time.Minute), now.Add(-time.Hour), wgmesh.StateStale},
		{"new, none yet", time.Time{}, now.Add(-5 * time.Second), wgmesh.StatePending},
		{"none after FailAfter", time.Time{}, now.Add(-time.Minute), wgmesh.StateFailed},
	}
	for _, tt := range tests {
		got := b.derive(now, wgtypes.Peer{LastHandshakeTime: tt.handshake}, tt.since)
		if got != tt.want {
			t.Errorf("%s: state %s, want %s", tt.name, got, tt.want)
		}
	}
}
