package tests

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OpenConfig's gnmi_cli (pinned in go.mod as a tool) drives a real
// kedge-daemon binary: Capabilities, Get, Set and a STREAM subscription,
// once with username/password metadata and once with an mTLS client
// certificate that the policy maps to master.

const gcliLevelPath = `elem: <name: "kedge"> elem: <name: "posture"> elem: <name: "config"> elem: <name: "level">`

func gcliBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH: cannot build " + pkg)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command(gobin, "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// gcliDaemon runs kedge-daemon and returns its TCP address once it
// listens; it is stopped with SIGTERM at cleanup and must exit 0.
func gcliDaemon(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	logDone := make(chan string, 1)
	go func() {
		var log strings.Builder
		re := regexp.MustCompile(`msg="gNMI listening" tcp=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		logDone <- log.String()
	}()
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("kedge-daemon exit after SIGTERM: %v\n%s", err, <-logDone)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("kedge-daemon did not stop after SIGTERM")
		}
	})
	go func() {
		log := <-logDone
		logDone <- log
		exited <- cmd.Wait()
	}()
	select {
	case a := <-addrc:
		return a
	case err := <-exited:
		t.Fatalf("kedge-daemon exited early: %v\n%s", err, <-logDone)
	case <-time.After(60 * time.Second):
		t.Fatal("kedge-daemon did not start listening")
	}
	return ""
}

// gcli runs gnmi_cli to completion and returns its output.
func gcli(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gnmi_cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// gcliStream runs a STREAM ON_CHANGE subscription to the posture level,
// sets the level with gnmi_cli -set, and waits for the subscriber to
// print both the initial value and the new one.
func gcliStream(t *testing.T, bin string, env, conn []string, from, to string) {
	t.Helper()
	sub := exec.Command(bin, append(append([]string{}, conn...),
		"-proto", `subscribe: <prefix: <elem: <name: "kedge">> subscription: <path: <elem: <name: "posture"> elem: <name: "config"> elem: <name: "level">> mode: ON_CHANGE> mode: STREAM encoding: PROTO>`,
		"-display_type", "single", "-streaming_duration", "60s")...)
	sub.Env = append(os.Environ(), env...)
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sub.Stderr = sub.Stdout
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	wait := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("subscriber ended before %q; output:\n%s", want, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if strings.TrimSpace(l) == want {
					return
				}
			case <-deadline:
				t.Fatalf("subscriber never printed %q; output:\n%s", want, strings.Join(seen, "\n"))
			}
		}
	}
	wait("kedge/posture/config/level, " + from)
	gcli(t, bin, env, append(append([]string{}, conn...), "-set", "-proto", "update: <path: <"+gcliLevelPath+"> val: <uint_val: "+to+">>")...)
	wait("kedge/posture/config/level, " + to)
}

// gcliQuery runs gnmi_cli -q query -qt qtype (display single) in the
// background and returns a function that waits for an output line
// matching re.
func gcliQuery(t *testing.T, bin string, env, conn []string, query, qtype string) func(re *regexp.Regexp) {
	t.Helper()
	sub := exec.Command(bin, append(append([]string{}, conn...), "-q", query, "-qt", qtype, "-dt", "s", "-sd", "60s")...)
	sub.Env = append(os.Environ(), env...)
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sub.Stderr = sub.Stdout
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	return func(re *regexp.Regexp) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("gnmi_cli -q %s -qt %s ended before %v; output:\n%s", query, qtype, re, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if re.MatchString(strings.TrimSpace(l)) {
					return
				}
			case <-deadline:
				t.Fatalf("gnmi_cli -q %s -qt %s never printed %v; output:\n%s", query, qtype, re, strings.Join(seen, "\n"))
			}
		}
	}
}

func TestGnmiCli(t *testing.T) {
	bins := t.TempDir()
	daemon := gcliBuild(t, bins, "github.com/guildhouse-co/kedge/server/cmd/kedge-daemon")
	cli := gcliBuild(t, bins, "github.com/openconfig/gnmi/cmd/gnmi_cli")

	t.Run("password", func(t *testing.T) {
		dir := t.TempDir()
		addr := gcliDaemon(t, daemon, "--data-dir", dir, "--dataplane", "off", "--listen", "127.0.0.1:0", "--socket", "off")
		pw, err := os.ReadFile(filepath.Join(dir, "master.password"))
		if err != nil {
			t.Fatal(err)
		}
		// gnmi_cli sends GNMI_USER/GNMI_PASS as username/password metadata.
		env := []string{"GNMI_USER=master", "GNMI_PASS=" + strings.TrimSpace(string(pw))}
		conn := []string{"-address", addr, "-ca_crt", filepath.Join(dir, "tls", "server.crt"), "-with_user_pass", "-timeout", "20s"}

		caps := gcli(t, cli, env, append(conn, "-capabilities")...)
		for _, want := range []string{`name: "kedge"`, "JSON_IETF", "gNMI_version"} {
			if !strings.Contains(caps, want) {
				t.Fatalf("capabilities lack %q:\n%s", want, caps)
			}
		}
		set := gcli(t, cli, env, append(conn, "-set", "-proto", "update: <path: <"+gcliLevelPath+"> val: <uint_val: 2>>")...)
		if !strings.Contains(set, "op: UPDATE") {
			t.Fatalf("set response:\n%s", set)
		}
		get := gcli(t, cli, env, append(conn, "-get", "-proto", "path: <"+gcliLevelPath+"> encoding: PROTO")...)
		if !strings.Contains(get, "uint_val: 2") {
			t.Fatalf("get response:\n%s", get)
		}
		gcliStream(t, cli, env, conn, "2", "4")

		// The usual form: -q with a path and -qt s. gnmi_cli sends the path
		// both as elem and as the deprecated element.
		next := gcliQuery(t, cli, env, conn, "/kedge/posture/state/level", "s")
		next(regexp.MustCompile(`^kedge/posture/state/level, .*\b4\b`))
		gcli(t, cli, env, append(conn, "-set", "-proto", "update: <path: <"+gcliLevelPath+"> val: <uint_val: 3>>")...)
		next(regexp.MustCompile(`^kedge/posture/state/level, .*\b3\b`))

		// Wrong password: gnmi_cli fails with Unauthenticated.
		bad := exec.Command(cli, append(conn, "-capabilities")...)
		bad.Env = append(os.Environ(), "GNMI_USER=master", "GNMI_PASS=wrong-password")
		out, err := bad.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Unauthenticated") {
			t.Fatalf("wrong password: %v\n%s", err, out)
		}
	})

	t.Run("mtls", func(t *testing.T) {
		dir := t.TempDir()
		ca, clientCert, clientKey := gcliPKI(t, dir, "gnmi-cli-client")
		policy := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(policy, []byte("tiers:\n  master: {write: [\"/\"]}\ncertificates:\n  gnmi-cli-client: master\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := gcliDaemon(t, daemon, "--data-dir", dir, "--dataplane", "off", "--listen", "127.0.0.1:0", "--socket", "off", "--tls-ca", ca, "--policy", policy)
		conn := []string{"-address", addr, "-ca_crt", filepath.Join(dir, "tls", "server.crt"),
			"-client_crt", clientCert, "-client_key", clientKey, "-timeout", "20s"}
		if caps := gcli(t, cli, nil, append(conn, "-capabilities")...); !strings.Contains(caps, `name: "kedge"`) {
			t.Fatalf("capabilities:\n%s", caps)
		}
		gcli(t, cli, nil, append(conn, "-set", "-proto", "update: <path: <"+gcliLevelPath+"> val: <uint_val: 3>>")...)
		if get := gcli(t, cli, nil, append(conn, "-get", "-proto", "path: <"+gcliLevelPath+"> encoding: PROTO")...); !strings.Contains(get, "uint_val: 3") {
			t.Fatalf("get:\n%s", get)
		}
		gcliStream(t, cli, nil, conn, "3", "5")
	})
}

// gcliPKI writes a CA and a client certificate/key signed by it.
func gcliPKI(t *testing.T, dir, cn string) (caPath, certPath, keyPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gnmicli test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	caPath, certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	for p, b := range map[string][]byte{
		caPath:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPath: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPath:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caPath, certPath, keyPath
}
