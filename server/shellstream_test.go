package server

import (
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/models/session"
)

func TestParseShellstreamEndpoints(t *testing.T) {
	got, err := parseEndpoints(" management=unix:/run/m.sock, monitoring=127.0.0.1:9100 ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[session.Management].Address != "/run/m.sock" || got[session.Monitoring].Address != "127.0.0.1:9100" {
		t.Errorf("parsed %v", got)
	}
	for in, want := range map[string]string{
		"management":                    "want type=endpoint",
		"shell=unix:/run/x.sock":        "parse session type",
		"routine=192.0.2.1:22":          "not a loopback address",
		"incident-response=/run/x.sock": "parse session type",
	} {
		if _, err := parseEndpoints(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseEndpoints(%q): %v, want an error containing %q", in, err, want)
		}
	}
}
