package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// errorLog counts ERROR records.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	l.msgs = append(l.msgs, line)
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

// TestSetOnAFullDiskIsResourceExhausted: a Set that cannot be made
// durable for lack of disk space is RESOURCE_EXHAUSTED naming the data
// directory and its filesystem (it was INTERNAL, with no ERROR log),
// the store logs it at ERROR, nothing acknowledged is lost, and Sets
// work again once space is freed.
func TestSetOnAFullDiskIsResourceExhausted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs and fill it")
	}
	disk := filepath.Join(os.TempDir(), fmt.Sprintf("kedge-target-full-%d-%d", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		os.Remove(disk)
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(disk, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
		os.Remove(disk)
	})
	logs := &errorLog{}
	dir := filepath.Join(disk, "store")
	e := newEnv(t, dir, store.Options{Logger: slog.New(logs)}, allow{})
	set := func(i int) error {
		_, err := e.set(&gpb.SetRequest{Update: []*gpb.Update{{
			Path: gp(t, fmt.Sprintf("/kedge/routes/route[prefix=10.9.%d.%d/32][table=254]/config", i/256, i%256)),
			Val:  jsonIETF(`{"next-hop":"192.0.2.1","device":"eth0"}`),
		}}})
		return err
	}
	acked := 0
	for ; acked < 5; acked++ {
		if err := set(acked); err != nil {
			t.Fatal(err)
		}
	}
	filler, err := os.Create(filepath.Join(disk, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 64<<10))
	}
	filler.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("fill: %v", err)
	}
	// The last allocated page of the log takes a few more records.
	var serr error
	for i := 0; i < 100 && serr == nil; i++ {
		if serr = set(acked); serr == nil {
			acked++
		}
	}
	st := status.Convert(serr)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("Set on a full disk: %v, want RESOURCE_EXHAUSTED", serr)
	}
	for _, w := range []string{dir, "tmpfs", "mounted at " + disk} {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("status %q does not name %q", st.Message(), w)
		}
	}
	logs.mu.Lock()
	if len(logs.msgs) == 0 || !strings.Contains(strings.Join(logs.msgs, "\n"), "out of disk space") {
		t.Errorf("no ERROR log about the full disk: %q", logs.msgs)
	}
	logs.mu.Unlock()
	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := set(acked); err != nil {
		t.Fatalf("Set after space was freed: %v", err)
	}
	acked++
	resp, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=*][table=*]/config/device")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(leaves(resp.GetNotification())); got != acked {
		t.Fatalf("%d routes after the full disk, want the %d acknowledged", got, acked)
	}
}
