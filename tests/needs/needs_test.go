package needs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnavailableSkipsOrFails runs a child test both ways: without
// KEDGE_REQUIRE_KERNEL a missing facility is a skip; with it, a failure;
// a feature the kernel lacks is a skip either way.
func TestUnavailableSkipsOrFails(t *testing.T) {
	if os.Getenv("NEEDS_CHILD") != "" {
		return // the children below run the other tests
	}
	for _, c := range []struct {
		test, require, want string
	}{
		{"TestChildUnavailable", "", "--- SKIP: TestChildUnavailable"},
		{"TestChildUnavailable", "1", "--- FAIL: TestChildUnavailable"},
		{"TestChildLacks", "", "--- SKIP: TestChildLacks"},
		{"TestChildLacks", "1", "--- SKIP: TestChildLacks"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^"+c.test+"$", "-test.v")
		cmd.Env = append(os.Environ(), "NEEDS_CHILD=1", RequireEnv+"="+c.require)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s with %s=%q: want %q in\n%s", c.test, RequireEnv, c.require, c.want, out)
		}
	}
}

func TestChildUnavailable(t *testing.T) {
	if os.Getenv("NEEDS_CHILD") == "" {
		t.Skip("run by TestUnavailableSkipsOrFails")
	}
	Unavailable(t, "needs a thing this machine lacks")
}

func TestChildLacks(t *testing.T) {
	if os.Getenv("NEEDS_CHILD") == "" {
		t.Skip("run by TestUnavailableSkipsOrFails")
	}
	Lacks(t, VLAN, "EOPNOTSUPP")
}
