package store

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

const crashEnv = "KEDGE_STORE_CRASH_DIR"

// bigEvery makes every n-th commit a large transaction, so kills land in
// the middle of multi-page writes too.
const (
	bigEvery  = 5
	bigRoutes = 300
	// undoEvery commits store a meta in the same write (CommitUndoable);
	// after metaEvery commits a PutMeta follows.
	undoEvery = 4
	metaEvery = 3
)

// TestCrashChild is the child side of TestCrashDurability: it commits in
// a loop and prints "ack N" after each commit returns. It does nothing
// unless started by the parent.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashDurability; runs only when started by it")
	}
	// A tiny compaction threshold makes snapshots happen under kills too.
	s, err := Open(dir, testSchema(t), Options{CompactBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	i := readTags(t, s, route(0)) + 1
	for ; ; i++ {
		v := str(itoa(i))
		ops := []Op{upd(t, route(0)+"/config/tags", v), upd(t, route(1)+"/config/tags", v)}
		if i%bigEvery == 0 {
			for k := 0; k < bigRoutes; k++ {
				ops = append(ops, upd(t, route(1000+k)+"/config/tags", v))
			}
		}
		var err error
		if i%undoEvery == 0 {
			// The commit and its meta must be durable together.
			tag := itoa(i)
			_, err = s.CommitUndoable(context.Background(), ops, "crash-undo", func([]Op) ([]byte, error) { return []byte(tag), nil })
		} else {
			_, err = s.Commit(context.Background(), ops)
		}
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("ack " + itoa(i) + "\n")
		if i%metaEvery == 0 {
			if err := s.PutMeta("crash-meta", []byte(itoa(i))); err != nil {
				t.Fatal(err)
			}
			os.Stdout.WriteString("meta " + itoa(i) + "\n")
		}
	}
}

func readTags(t testing.TB, s *Store, p string) int {
	var n int
	_ = s.Read(func(tr *tree.Tree) error {
		tgt, found, err := tr.Lookup(path(t, p+"/config/tags"))
		if err != nil {
			t.Fatal(err)
		}
		if found {
			n, _ = strconv.Atoi(tgt.In.Leaf(tgt.Node).Str())
		}
		return nil
	})
	return n
}

// TestCrashDurability SIGKILLs a committing child at random moments, 30
// times, and checks after each kill that every acknowledged commit is on
// disk and that no transaction is half applied.
func TestCrashDurability(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("inside the child")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	lastAck, lastMeta, torn := 0, 0, 0
	for trial := 0; trial < 30; trial++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(60)
		sc := bufio.NewScanner(out)
		acks := 0
		killed := false
		for sc.Scan() {
			line := sc.Text()
			if m, ok := strings.CutPrefix(line, "meta "); ok {
				lastMeta, _ = strconv.Atoi(m)
				continue
			}
			if !strings.HasPrefix(line, "ack ") {
				continue
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "ack "))
			lastAck = n
			if acks++; acks == killAfter && !killed {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				// Keep reading: acks the child printed before the signal
				// landed are still in the pipe, and they count.
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("trial %d: child exited after %d acks: %v", trial, acks, sc.Err())
		}
		// What a kill leaves is never damage: at most a torn final
		// record, which the check reports and the open drops.
		r, err := Check(dir, testSchema(t))
		if err != nil || r.Damage != nil {
			t.Fatalf("trial %d: check after kill: %v %v", trial, err, r.Damage)
		}
		if r.Torn != "" {
			torn++
		}
		s, err := Open(dir, testSchema(t), Options{})
		if err != nil {
			t.Fatalf("trial %d: reopen after kill: %v", trial, err)
		}
		if s.Seq() != r.Seq {
			t.Fatalf("trial %d: check said seq %d, open restored %d", trial, r.Seq, s.Seq())
		}
		a, b := readTags(t, s, route(0)), readTags(t, s, route(1))
		if a != b {
			t.Fatalf("trial %d: half-applied transaction: %d vs %d", trial, a, b)
		}
		if a < lastAck {
			t.Fatalf("trial %d: acknowledged commit %d lost (disk has %d)", trial, lastAck, a)
		}
		if a > lastAck+1 {
			t.Fatalf("trial %d: disk has %d, beyond the one commit that may be durable but unacknowledged after the last ack %d", trial, a, lastAck)
		}
		wantBig := a - a%bigEvery
		for k := 0; k < bigRoutes && wantBig > 0; k += 37 {
			if got := readTags(t, s, route(1000+k)); got != wantBig {
				t.Fatalf("trial %d: big transaction half applied: route %d has %d, want %d", trial, k, got, wantBig)
			}
		}
		meta := func(key string) int {
			v, err := s.GetMeta(key)
			if err != nil {
				t.Fatalf("trial %d: get meta %s: %v", trial, key, err)
			}
			n, _ := strconv.Atoi(string(v))
			return n
		}
		if m := meta("crash-meta"); m < lastMeta || m > a {
			t.Fatalf("trial %d: meta %d after acknowledged meta %d and commit %d", trial, m, lastMeta, a)
		}
		if u, want := meta("crash-undo"), a-a%undoEvery; u != want {
			t.Fatalf("trial %d: commit %d on disk with its undo meta at %d, want %d: not one durable write", trial, a, u, want)
		}
		lastAck = a
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("30 kills survived; %d commits acknowledged in all; %d kills left a torn final record", lastAck, torn)
}
