package tests

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The image as `make container-build` makes it, built with podman and run
// with podman: its labels and user, static binaries, `kedge-daemon
// --version`, and a dataplane-off daemon in a container without a network
// that the host reaches over its unix socket in a bind-mounted directory.

// kedgeUID is the image's non-root user (deploy/image/etc/passwd).
const kedgeUID = 65532

// repoRoot is the clone the tests run in (go test runs in tests/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Containerfile")); err != nil {
		t.Fatalf("no Containerfile at the clone's root %s: %v", root, err)
	}
	return root
}

// needPodman skips unless root with podman and runc (the runtime
// deploy/podman/containers.conf selects) installed.
func needPodman(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: rootful podman, and the daemon maps uid 0 on its socket to master")
	}
	for _, tool := range []string{"podman", "runc", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH (apt-get install podman runc make): %v", tool, err)
		}
	}
}

// podman runs podman with the repository's containers.conf (runc,
// explicit ulimits) and returns its stdout; stderr goes into the failure.
func podman(t testing.TB, args ...string) string {
	t.Helper()
	out, err := podmanCmd(t, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func podmanCmd(t testing.TB, args ...string) *exec.Cmd {
	cmd := exec.Command("podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(repoRoot(t), "deploy", "podman", "containers.conf"))
	return cmd
}

// buildImage runs make container-build with a unique tag and staging
// directory and removes the image at cleanup.
func buildImage(t testing.TB, version string) (image string, took time.Duration) {
	t.Helper()
	image = fmt.Sprintf("localhost/kedge-test:%d-%x", os.Getpid(), rand.Uint32())
	t.Cleanup(func() {
		if out, err := podmanCmd(t, "rmi", "-f", image).CombinedOutput(); err != nil {
			t.Errorf("podman rmi %s: %v\n%s", image, err, out)
		}
	})
	cmd := exec.Command("make", "--no-print-directory", "container-build",
		"IMAGE="+image, "VERSION="+version, "IMAGE_DIR="+t.TempDir())
	cmd.Dir = repoRoot(t)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make container-build: %v\n%s", err, out)
	}
	return image, time.Since(start)
}

func TestContainerImage(t *testing.T) {
	needPodman(t)
	start := time.Now()
	version := fmt.Sprintf("ctr-test-%d", os.Getpid())
	image, buildTook := buildImage(t, version)

	// Labels, user and entrypoint as the Containerfile says.
	var inspect []struct {
		Size   int64
		Config struct {
			User       string
			Entrypoint []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal([]byte(podman(t, "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect %s: %v (%d images)", image, err, len(inspect))
	}
	img := inspect[0]
	rev, err := exec.Command("git", "-C", repoRoot(t), "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.title":    "kedge",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": strings.TrimSpace(string(rev)),
	} {
		if got := img.Config.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if img.Config.User != fmt.Sprintf("%d:%d", kedgeUID, kedgeUID) {
		t.Errorf("image user %q, want the non-root kedge user %d", img.Config.User, kedgeUID)
	}
	if len(img.Config.Entrypoint) != 1 || img.Config.Entrypoint[0] != "/usr/local/bin/kedge-daemon" {
		t.Errorf("entrypoint %q, want kedge-daemon", img.Config.Entrypoint)
	}

	// The binaries as the image holds them: static (no interpreter, no
	// dynamic section), so they run FROM scratch and on any node.
	cpDir := t.TempDir()
	ctr := fmt.Sprintf("kedge-test-cp-%d-%x", os.Getpid(), rand.Uint32())
	podman(t, "create", "--name", ctr, image)
	t.Cleanup(func() { podmanCmd(t, "rm", "-f", ctr).Run() })
	for _, f := range []string{"/usr/local/bin/kedge-daemon", "/usr/local/bin/kedge-cni", "/usr/local/bin/kedge-wg", "/etc/passwd"} {
		dst := filepath.Join(cpDir, filepath.Base(f))
		podman(t, "cp", ctr+":"+f, dst)
		if strings.HasPrefix(f, "/usr/local/bin/") {
			checkStatic(t, dst)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(cpDir, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^kedge:x:%d:%d:`, kedgeUID, kedgeUID)).Match(passwd) {
		t.Errorf("/etc/passwd has no kedge user %d:\n%s", kedgeUID, passwd)
	}

	// --version inside the container.
	runStart := time.Now()
	out := podman(t, "run", "--rm", "--network", "none", image, "--version")
	if got, want := strings.TrimSpace(out), "kedge-daemon "+version; got != want {
		t.Errorf("kedge-daemon --version in the container: %q, want %q", got, want)
	}
	versionTook := time.Since(runStart)

	// A daemon with the dataplane off, as the image's non-root user, in a
	// container with no network: the host reaches it only through the
	// socket in the bind-mounted directory. The host's uid 0 is master on
	// that socket (SO_PEERCRED crosses the mount: rootful podman, no user
	// namespace).
	sockDir := t.TempDir()
	if err := os.Chown(sockDir, kedgeUID, kedgeUID); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kedge-test-daemon-%d-%x", os.Getpid(), rand.Uint32())
	podman(t, "run", "-d", "--name", name, "--network", "none", "-v", sockDir+":/run/kedge",
		image, "--dataplane", "off", "--listen", "", "--socket", "/run/kedge/kedge.sock", "--node-name", "ctr-node")
	t.Cleanup(func() { podmanCmd(t, "rm", "-f", "-t", "0", name).Run() })
	waitContainerLog(t, name, regexp.MustCompile(`msg="gNMI listening" unix=/run/kedge/kedge.sock`))

	conn, err := grpc.NewClient("unix://"+filepath.Join(sockDir, "kedge.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := gpb.NewGNMIClient(conn)
	ctx := rpcCtx(t)
	for p, want := range map[string]string{
		"/kedge/system/state/node-name": `"ctr-node"`,
		"/kedge/system/state/version":   fmt.Sprintf("%q", version),
	} {
		resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Encoding: gpb.Encoding_JSON_IETF})
		if err != nil {
			t.Fatalf("gNMI Get %s over the container's socket: %v", p, err)
		}
		if got := getJSON(t, resp); got != want {
			t.Errorf("Get %s = %s, want %s", p, got, want)
		}
	}
	// The host's root is master there: a Set is accepted and read back.
	if _, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: path(t, "/kedge/posture/config/level"),
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 3}},
	}}}); err != nil {
		t.Fatalf("gNMI Set of the level over the container's socket: %v", err)
	}
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{path(t, "/kedge/posture/config/level")}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatal(err)
	}
	if got := getJSON(t, resp); got != "3" {
		t.Errorf("level after Set = %s, want 3", got)
	}
	conn.Close()

	// SIGTERM (podman stop) ends it cleanly.
	podman(t, "stop", "-t", "30", name)
	if code := strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("daemon exit code after podman stop: %s\n%s", code, podman(t, "logs", name))
	}
	t.Logf("image %s: %d bytes; make container-build %v, --version run %v, whole test %v",
		image, img.Size, buildTook.Round(time.Millisecond), versionTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// checkStatic fails unless file is an ELF executable with no program
// interpreter and no dynamic section.
func checkStatic(t testing.TB, file string) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (program header %v)", filepath.Base(file), p.Type)
		}
	}
}

// waitContainerLog follows a container's log until a line matches re.
func waitContainerLog(t testing.TB, name string, re *regexp.Regexp) {
	t.Helper()
	cmd := podmanCmd(t, "logs", "-f", name)
	var all bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait(); pr.Close() }()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if re.MatchString(sc.Text()) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("container %s ended its log before %v:\n%s", name, re, all.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-found
		t.Fatalf("container %s never logged %v:\n%s", name, re, all.String())
	}
}

// getJSON returns the one JSON_IETF value of a GetResponse.
func getJSON(t testing.TB, resp *gpb.GetResponse) string {
	t.Helper()
	if len(resp.Notification) != 1 || len(resp.Notification[0].Update) != 1 {
		t.Fatalf("Get answered %d notifications, want 1 with 1 update: %v", len(resp.Notification), resp)
	}
	return strings.TrimSpace(string(resp.Notification[0].Update[0].Val.GetJsonIetfVal()))
}
