package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallCNI(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kedge-cni")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\necho plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	var out bytes.Buffer
	code := run([]string{"install-cni", "--plugin", plugin, "--bin-dir", bin, "--conf-dir", conf, "--pools", "10.244.0.0/24"}, nil, &out, &out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	// CNI runs the binary named after the plugin type, "kedge".
	got, err := os.ReadFile(filepath.Join(bin, "kedge"))
	if err != nil || !bytes.Contains(got, []byte("echo plugin")) {
		t.Fatalf("plugin not copied: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(conf, "10-kedge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(raw, &cl); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, raw)
	}
	if cl.Name != "kedge" || len(cl.Plugins) == 0 || cl.Plugins[0]["type"] != "kedge" {
		t.Fatalf("conflist %s", raw)
	}
	if code := run([]string{"install-cni", "--plugin", filepath.Join(dir, "missing")}, nil, &out, &out); code == 0 {
		t.Fatal("installing a missing plugin succeeded")
	}
}
