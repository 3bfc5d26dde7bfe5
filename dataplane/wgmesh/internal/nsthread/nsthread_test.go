package nsthread

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/vishvananda/netns"
)

// Functions run through a Thread see the target namespace, the caller's
// goroutine does not, and a closed Thread refuses work.
func TestThreadEntersNamespace(t *testing.T) {
	needs.Root(t, "creates a network namespace")
	name := fmt.Sprintf("nsthread-%05x", rand.IntN(1<<20))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("restore netns: %v", serr) // thread stays locked and dies with the test
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	defer orig.Close()
	t.Cleanup(func() { netns.DeleteNamed(name) })

	th, err := Start("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var inside netns.NsHandle
	if err := th.Do(func() error { var err error; inside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(h) {
		t.Errorf("thread is in %v, want the new namespace %v", inside, h)
	}
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if here.Equal(h) {
		t.Errorf("caller's goroutine moved into the namespace")
	}
	th.Close()
	th.Close() // idempotent
	if err := th.Do(func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if _, err := Start("/nonexistent/netns"); err == nil {
		t.Errorf("Start on a missing namespace succeeded")
	}
}
