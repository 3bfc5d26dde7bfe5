package shellstream

import "testing"

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]Endpoint{
		"unix:/run/kedge/mgmt.sock": {Network: "unix", Address: "/run/kedge/mgmt.sock"},
		"/run/kedge/mgmt.sock":      {Network: "unix", Address: "/run/kedge/mgmt.sock"},
		"tcp:127.0.0.1:2222":        {Network: "tcp", Address: "127.0.0.1:2222"},
		"127.0.0.9:22":              {Network: "tcp", Address: "127.0.0.9:22"},
		"[::1]:9100":                {Network: "tcp", Address: "[::1]:9100"},
	} {
		got, err := ParseEndpoint(in)
		if err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Only loopback or unix: nothing behind Kedge may be reachable around it.
	for _, in := range []string{"10.0.0.1:22", "0.0.0.0:22", "example.com:22", "unix:relative.sock", "localhost:22", "127.0.0.1", ""} {
		if got, err := ParseEndpoint(in); err == nil {
			t.Errorf("ParseEndpoint(%q) = %v, want an error", in, got)
		}
	}
}
