// Package needs decides, for tests, what happens when the machine lacks
// what a test needs: root, a tool, a device, a kernel facility. By default
// such a test skips and says why. With KEDGE_REQUIRE_KERNEL=1 in the
// environment (CI runs as root with it) it fails instead, so a CI
// machine that silently lost root, bpffs or /dev/net/tun cannot pass by
// skipping. The exceptions are the kernel features this machine is known
// to lack (Feature): those stay skips that print why, whatever the
// setting.
//
// Only tests import this package.
package needs

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns skips into failures.
const RequireEnv = "KEDGE_REQUIRE_KERNEL"

// Required reports whether KEDGE_REQUIRE_KERNEL=1 is set.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable is what a test does when the machine lacks something it
// needs: skip with the reason, or fail with it under KEDGE_REQUIRE_KERNEL.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1: the machine must provide it)", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Root needs an effective uid of 0; why says what the test does with it.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: %s", why)
	}
}

// Tool needs a program on PATH and returns its path.
func Tool(t testing.TB, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "needs %s on PATH (%s): %v", name, why, err)
	}
	return p
}

// TUN needs /dev/net/tun (wireguard-go's devices).
func TUN(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		Unavailable(t, "needs /dev/net/tun for wireguard-go: %v", err)
	}
}

// Feature is a kernel feature some test exercises where the kernel has
// it. This machine's kernel lacks these (DESIGN.md, testing ladder), so a
// test that finds one missing skips and says why even under
// KEDGE_REQUIRE_KERNEL.
type Feature string

// The kernel features this machine lacks.
const (
	VLAN      Feature = "8021q (VLAN links)"
	WireGuard Feature = "the WireGuard kernel module"
	Dummy     Feature = "dummy links"
	VRF       Feature = "VRF links"
	IPVLAN    Feature = "ipvlan links"
	GRE       Feature = "GRE tunnels"
)

// Lacks skips the test because the kernel lacks f; detail says how the
// test found out and what it still checked.
func Lacks(t testing.TB, f Feature, detail string) {
	t.Helper()
	t.Skipf("kernel lacks %s: %s", f, detail)
}
