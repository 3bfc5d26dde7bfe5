package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The seed's dev workflow through make: dev-build makes the image offline
// from this host's packages, dev starts it, dev-exec runs the tools in it
// (a -race test and a build of the daemon with the mounted caches, ip, wg,
// ansible-playbook), dev-down removes it.
func TestDevContainer(t *testing.T) {
	needPodman(t)
	for _, pkg := range []string{"wireguard-tools", "ansible-core", "gcc", "libc6-dev", "git"} {
		out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
		if err != nil || string(out) != "installed" {
			t.Skipf("make dev-build copies Debian package %s from this host, and it is not installed (apt-get install %s)", pkg, pkg)
		}
	}
	id := fmt.Sprintf("%d-%x", os.Getpid(), rand.Uint32())
	vars := []string{
		"DEV_IMAGE=localhost/kedge-dev-test:" + id,
		"DEV_NAME=kedge-dev-test-" + id,
		"DEV_DIR=" + t.TempDir(),
	}
	devMake := func(target string, extra ...string) string {
		t.Helper()
		cmd := exec.Command("make", append(append([]string{"--no-print-directory", target}, vars...), extra...)...)
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		podmanCmd(t, "rm", "-f", "-t", "0", "kedge-dev-test-"+id).Run()
		if out, err := podmanCmd(t, "rmi", "-f", "localhost/kedge-dev-test:"+id).CombinedOutput(); err != nil {
			t.Errorf("podman rmi: %v\n%s", err, out)
		}
	})

	start := time.Now()
	devMake("dev-build")
	buildTook := time.Since(start)
	devMake("dev")
	execStart := time.Now()
	out := devMake("dev-exec", `CMD=set -e; cd /src; go version; ip -V; wg --version; ansible-playbook --version;`+
		` go build -o /tmp/kedge-daemon ./server/cmd/kedge-daemon; /tmp/kedge-daemon --version;`+
		` go test -race -count=1 ./models/accord; echo dev-exec-done`)
	execTook := time.Since(execStart)
	for _, want := range []string{"go version go", "iproute2", "wireguard-tools", "ansible-playbook [core", "kedge-daemon ", "ok  \tgithub.com/guildhouse-co/kedge/models/accord", "dev-exec-done"} {
		if !strings.Contains(out, want) {
			t.Errorf("make dev-exec output lacks %q:\n%s", want, out)
		}
	}
	devMake("dev-down")
	if err := podmanCmd(t, "container", "exists", "kedge-dev-test-"+id).Run(); err == nil {
		t.Errorf("container kedge-dev-test-%s still exists after make dev-down", id)
	}
	size := strings.TrimSpace(podman(t, "image", "inspect", "--format", "{{.Size}}", "localhost/kedge-dev-test:"+id))
	t.Logf("dev image %s bytes; make dev-build %v, dev-exec (build + -race test) %v", size, buildTook.Round(time.Second), execTook.Round(time.Second))
}
