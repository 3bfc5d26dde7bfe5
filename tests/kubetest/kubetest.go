// Package kubetest starts a real Kubernetes control plane for tests, the
// way controller-runtime's envtest does: an etcd and a kube-apiserver on
// 127.0.0.1 with unique ports, a fresh certificate authority (Go crypto),
// client certificates per identity, service-account signing keys and RBAC
// authorization. The binaries are built by `make kube-tools` into a cache
// outside the clone; without them a test skips and names that command,
// except under CI (CI=true), where `make test` builds them first and a
// missing binary fails the test.
package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// The versions `make kube-tools` builds; keep them in step with the
// Makefile.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.6.8"
)

// Admin identity: the API server treats the group system:masters as
// cluster-admin without any RBAC binding.
const (
	AdminUser  = "kubetest-admin"
	AdminGroup = "system:masters"
)

// Binaries returns the paths of kube-apiserver and etcd: under
// $KEDGE_KUBE_TOOLS if set, else ${XDG_CACHE_HOME:-$HOME/.cache}/kedge/tools.
func Binaries() (apiserver, etcd string) {
	dir := os.Getenv("KEDGE_KUBE_TOOLS")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "kedge", "tools")
	}
	return filepath.Join(dir, "kube-apiserver-"+KubeVersion, "kube-apiserver"),
		filepath.Join(dir, "etcd-"+EtcdVersion, "etcd")
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	dir     string
	ca      *authority
	apiPort int
	etcdURL string
	apiBin  string
	etcd    *process
	mu      sync.Mutex
	api     *process
}

type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start starts a control plane and stops it when the test ends. It skips
// the test when the binaries are missing (fails under CI).
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiBin, etcdBin := Binaries()
	for _, b := range []string{apiBin, etcdBin} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("needs %s: run `make kube-tools` (builds kube-apiserver %s and etcd %s, about 10 minutes cold)", b, KubeVersion, EtcdVersion)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	c, err := start(t.TempDir(), apiBin, etcdBin)
	if err != nil {
		if c != nil {
			c.Stop()
		}
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log (end):\n%s\netcd log (end):\n%s",
				tail(filepath.Join(c.dir, "kube-apiserver.log")), tail(filepath.Join(c.dir, "etcd.log")))
		}
	})
	return c
}

func start(dir, apiBin, etcdBin string) (*Cluster, error) {
	c := &Cluster{dir: dir, apiBin: apiBin}
	var err error
	if c.ca, err = newAuthority(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), c.ca.pem, 0o600); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	crt, key, err := c.ca.issue("kube-apiserver", nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "apiserver.crt"), crt, 0o600),
		os.WriteFile(filepath.Join(dir, "apiserver.key"), key, 0o600),
		serviceAccountKey(filepath.Join(dir, "sa.key"))); err != nil {
		return nil, fmt.Errorf("write API server keys: %w", err)
	}
	if err := c.startEtcd(etcdBin); err != nil {
		return c, err
	}
	if c.apiPort, err = freePort(); err != nil {
		return c, err
	}
	return c, c.StartAPIServer()
}

func (c *Cluster) startEtcd(bin string) error {
	var lastErr error
	for range 5 { // a free port can be taken before etcd binds it
		cp, err1 := freePort()
		pp, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", cp)
		peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
		p, err := run(filepath.Join(c.dir, "etcd.log"), bin,
			"--name", "kubetest", "--data-dir", filepath.Join(c.dir, "etcd"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "kubetest="+peer, "--unsafe-no-fsync", "--log-level", "warn")
		if err != nil {
			return err
		}
		if err = waitHTTP(p, http.DefaultClient, client+"/health", 60*time.Second); err == nil {
			c.etcd, c.etcdURL = p, client
			return nil
		}
		p.stop()
		os.RemoveAll(filepath.Join(c.dir, "etcd"))
		lastErr = err
	}
	return fmt.Errorf("start etcd: %w", lastErr)
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on
// the cluster's port and waits until it is ready.
func (c *Cluster) StartAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return errors.New("start kube-apiserver: already running")
	}
	f := func(name string) string { return filepath.Join(c.dir, name) }
	p, err := run(f("kube-apiserver.log"), c.apiBin,
		"--etcd-servers", c.etcdURL,
		"--etcd-prefix", "/registry",
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		// The kubernetes Service's endpoints may not be a loopback
		// address; nothing here needs that Service.
		"--endpoint-reconciler-type", "none",
		"--secure-port", strconv.Itoa(c.apiPort),
		"--tls-cert-file", f("apiserver.crt"),
		"--tls-private-key-file", f("apiserver.key"),
		"--client-ca-file", f("ca.crt"),
		"--service-account-key-file", f("sa.key"),
		"--service-account-signing-key-file", f("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--authorization-mode", "RBAC",
		// No controller manager runs here to create each namespace's
		// default service account, which this plugin would demand.
		"--disable-admission-plugins", "ServiceAccount",
		"--allow-privileged=true",
		"--cert-dir", f("cert"),
		"--v", "1",
	)
	if err != nil {
		return err
	}
	hc, err := c.httpClient(AdminUser, AdminGroup)
	if err != nil {
		p.stop()
		return err
	}
	if err := waitHTTP(p, hc, c.Host()+"/readyz", 90*time.Second); err != nil {
		p.stop()
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	c.api = p
	return nil
}

// StopAPIServer stops kube-apiserver; etcd keeps the cluster's data.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		c.api.stop()
		c.api = nil
	}
}

// Stop stops everything; the test's temp dir holds the logs until then.
func (c *Cluster) Stop() {
	c.StopAPIServer()
	if c.etcd != nil {
		c.etcd.stop()
		c.etcd = nil
	}
}

// Host is the API server's URL.
func (c *Cluster) Host() string { return fmt.Sprintf("https://127.0.0.1:%d", c.apiPort) }

// Admin is a client configuration with cluster-admin rights.
func (c *Cluster) Admin() *rest.Config {
	cfg, err := c.Config(AdminUser, AdminGroup)
	if err != nil {
		panic(err) // issuing a certificate from an in-memory CA does not fail
	}
	return cfg
}

// Config is a client configuration for a user with groups, authenticated
// by a client certificate from the cluster's CA.
func (c *Cluster) Config(user string, groups ...string) (*rest.Config, error) {
	crt, key, err := c.ca.issue(user, groups, nil)
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host: c.Host(),
		TLSClientConfig: rest.TLSClientConfig{
			CertData: crt, KeyData: key, CAData: c.ca.pem,
		},
		QPS: 200, Burst: 400,
	}, nil
}

// Kubeconfig writes a kubeconfig file for user (as kubectl and the
// daemon's --kubeconfig read it) and returns its path.
func (c *Cluster) Kubeconfig(user string, groups ...string) (string, error) {
	crt, key, err := c.ca.issue(user, groups, nil)
	if err != nil {
		return "", err
	}
	b64 := func(b []byte) string { return base64Std(b) }
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: %s}
current-context: kubetest
`, c.Host(), b64(c.ca.pem), user, b64(crt), b64(key), user)
	f, err := os.CreateTemp(c.dir, "kubeconfig-*")
	if err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return f.Name(), nil
}

func (c *Cluster) httpClient(user string, groups ...string) (*http.Client, error) {
	crt, key, err := c.ca.issue(user, groups, nil)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("load client key pair: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.cert)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
	}}, nil
}

func run(logPath, bin string, args ...string) (*process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The control plane dies with the test binary, even on a kill -9.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// The parent-death signal fires when the thread that forked the child
// exits, not the process, and Go ends threads: one whose goroutine locked
// it (to enter a network namespace, as the mesh tests do) and returned
// locked is destroyed. So every child is forked from one locked thread
// that lives as long as the test binary.
var (
	spawnOnce sync.Once
	spawnReq  chan func()
)

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReq = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread never exits
			for f := range spawnReq {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReq <- func() { errc <- cmd.Start() }
	return <-errc
}

func waitHTTP(p *process, hc *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %v\n%s", p.err, tail(p.log))
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, last)
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
