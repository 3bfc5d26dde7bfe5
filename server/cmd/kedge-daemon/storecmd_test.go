package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// runBin runs the daemon binary to completion and returns its exit code
// and output.
func runBin(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %v: %v\n%s", args, err, out)
	return 0, ""
}

// TestStoreRecoverVerb: a daemon refuses to start on a store whose log is
// damaged mid-way, naming the file, the offset, the commits after it and
// the recovery verb; "store check" and the "store recover" dry run report
// the same and change nothing; "store recover --apply" drops exactly that
// and the daemon's store opens again.
func TestStoreRecoverVerb(t *testing.T) {
	bin := buildDaemon(t)
	data := t.TempDir()
	dir := filepath.Join(data, "store")
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		p, err := tree.ParsePath(fmt.Sprintf("/kedge/routes/route[prefix=10.1.%d.%d/32][table=254]/config/device", i/256, i%256))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Commit(context.Background(), []store.Op{{Kind: store.OpUpdate, Path: p,
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "eth0"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	// A changed byte in the middle of the log.
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	const mid = 10000 // the log holds about 40 kB of records
	if _, err := f.ReadAt(b[:], mid); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b[:], mid); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hash := func() string {
		var s strings.Builder
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			fmt.Fprintf(&s, "%s %x\n", e.Name(), data)
		}
		return s.String()
	}
	before := hash()

	code, out := runBin(t, bin, "--data-dir", data, "--listen", "127.0.0.1:0", "--socket", "off", "--dataplane", "off")
	offset := regexp.MustCompile(`at offset (\d+)`).FindStringSubmatch(out)
	commits := regexp.MustCompile(`(\d+) commits \(seq`).FindStringSubmatch(out)
	if code == 0 || offset == nil || commits == nil || !strings.Contains(out, segs[0]) ||
		!strings.Contains(out, "kedge-daemon store check --data-dir "+dir) {
		t.Fatalf("daemon on a damaged store: exit %d, want a refusal naming the file, offset, commits and the verb:\n%s", code, out)
	}
	if hash() != before {
		t.Fatal("the refused start changed the store")
	}
	for _, args := range [][]string{{"store", "check", "--data-dir", data}, {"store", "recover", "--data-dir", dir}} {
		code, out := runBin(t, bin, args...)
		if code != 1 || !strings.Contains(out, "DAMAGED") || !strings.Contains(out, segs[0]+" at offset "+offset[1]) ||
			!strings.Contains(out, "after it, "+commits[1]+" commits") || !strings.Contains(out, "rewrite "+segs[0]+" with the") {
			t.Fatalf("%v: exit %d, want 1 and the same damage (offset %s, %s commits after it):\n%s", args, code, offset[1], commits[1], out)
		}
		if args[1] == "recover" && !strings.Contains(out, "dry run: nothing was changed") {
			t.Fatalf("recover without --apply does not say it is a dry run:\n%s", out)
		}
		if hash() != before {
			t.Fatalf("%v changed the store", args)
		}
	}
	code, out = runBin(t, bin, "store", "recover", "--data-dir", data, "--apply")
	if code != 0 || !strings.Contains(out, "after it, "+commits[1]+" commits") || !strings.Contains(out, "ok now") {
		t.Fatalf("recover --apply: exit %d:\n%s", code, out)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "damaged-*", filepath.Base(segs[0])))
	if len(aside) != 1 {
		t.Fatalf("no original kept aside: %v", aside)
	}
	st, err = store.Open(dir, schema, store.Options{})
	if err != nil {
		t.Fatalf("open after recovery: %v", err)
	}
	defer st.Close()
	var kept int
	fmt.Sscan(commits[1], &kept)
	if int(st.Seq())+kept+1 != 300 {
		t.Fatalf("after recovery seq %d; with %d dropped after the damaged one, want %d", st.Seq(), kept, 300-kept-1)
	}
	if code, out := runBin(t, bin, "store", "bogus"); code != 2 || !strings.Contains(out, "usage: kedge-daemon store") {
		t.Fatalf("bad usage: exit %d:\n%s", code, out)
	}
	if code, out := runBin(t, bin, "store", "--help"); code != 0 || !strings.Contains(out, "--apply") {
		t.Fatalf("store --help: exit %d:\n%s", code, out)
	}
}
