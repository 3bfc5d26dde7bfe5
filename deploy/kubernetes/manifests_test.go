// Package kubernetes_test checks the Kubernetes manifests: every object
// decodes strictly into the API's Go types (an unknown or duplicated field
// is an error), and the DaemonSet, with and without the wg-sidecar
// component, keeps the invariants its comments promise, checked against
// the daemon's own config and policy parsers and the real binaries.
package kubernetes_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/config"
	kubev1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

// kustomization is the part of kustomize's file format these manifests
// use; decoded with unknown fields refused.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Components []string `yaml:"components"`
	Patches    []struct {
		Path string `yaml:"path"`
	} `yaml:"patches"`
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var k kustomization
	if err := dec.Decode(&k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// resourceFiles lists a kustomization's resource files, following
// resources that are directories into their own kustomizations.
func resourceFiles(t *testing.T, dir string, k kustomization) []string {
	t.Helper()
	var out []string
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s/kustomization.yaml: resource %s: %v", dir, r, err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		sub := readKustomization(t, p)
		if sub.Kind != "Kustomization" {
			t.Fatalf("%s: a %s among resources", p, sub.Kind)
		}
		out = append(out, resourceFiles(t, p, sub)...)
	}
	return out
}

// decoder is a strict YAML decoder for the kinds these manifests use.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme,
		admissionv1.AddToScheme, apiextv1.AddToScheme, kubev1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeFile decodes every document of a manifest file strictly.
func decodeFile(t *testing.T, dec runtime.Decoder, file string) []runtime.Object {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := kyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: strict decode: %v", file, err)
		}
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

// manifests is what the kustomization renders, as decoded objects, plus
// the DaemonSet with each component's patch applied.
type manifests struct {
	objs      []runtime.Object
	namespace string
	images    map[string]bool
	variants  map[string]*appsv1.DaemonSet // "base", "wg-sidecar"
}

func load(t *testing.T) manifests {
	t.Helper()
	dec := decoder(t)
	k := readKustomization(t, ".")
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	m := manifests{namespace: k.Namespace, images: map[string]bool{}, variants: map[string]*appsv1.DaemonSet{}}
	for _, img := range k.Images {
		m.images[img.Name] = img.NewName != "" && img.NewTag != ""
	}
	for _, f := range resourceFiles(t, ".", k) {
		m.objs = append(m.objs, decodeFile(t, dec, f)...)
	}
	var ds *appsv1.DaemonSet
	for _, o := range m.objs {
		if d, ok := o.(*appsv1.DaemonSet); ok {
			if ds != nil {
				t.Fatal("more than one DaemonSet")
			}
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet among the kustomization's resources")
	}
	m.variants["base"] = ds

	// Every directory with a kustomization is a resource or a component:
	// nothing lies around unused.
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.Name(), "kustomization.yaml")); err != nil {
			continue
		}
		comp := readKustomization(t, e.Name())
		if comp.Kind != "Component" {
			continue // a resource directory (listed in resources, decoded above)
		}
		if comp.APIVersion != "kustomize.config.k8s.io/v1alpha1" || len(comp.Resources) > 0 || len(comp.Patches) == 0 {
			t.Fatalf("%s: a component of patches only, got %+v", e.Name(), comp)
		}
		base, err := json.Marshal(ds)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range comp.Patches {
			objs := decodeFile(t, dec, filepath.Join(e.Name(), p.Path))
			if len(objs) != 1 {
				t.Fatalf("%s/%s: %d objects, want one DaemonSet patch", e.Name(), p.Path, len(objs))
			}
			patch, ok := objs[0].(*appsv1.DaemonSet)
			if !ok || patch.Name != ds.Name || patch.Namespace != ds.Namespace {
				t.Fatalf("%s/%s patches %T %s, not the DaemonSet", e.Name(), p.Path, objs[0], patch.Name)
			}
			pj, err := json.Marshal(patch)
			if err != nil {
				t.Fatal(err)
			}
			if base, err = strategicpatch.StrategicMergePatch(base, pj, appsv1.DaemonSet{}); err != nil {
				t.Fatalf("%s/%s: strategic merge: %v", e.Name(), p.Path, err)
			}
		}
		var out appsv1.DaemonSet
		if err := json.Unmarshal(base, &out); err != nil {
			t.Fatal(err)
		}
		m.variants[e.Name()] = &out
	}
	if m.variants["wg-sidecar"] == nil {
		t.Fatal("no wg-sidecar component")
	}
	return m
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	kinds := map[string]int{}
	for _, o := range m.objs {
		kinds[fmt.Sprintf("%T", o)]++
		meta, ok := o.(interface{ GetNamespace() string })
		if !ok {
			t.Fatalf("%T has no metadata", o)
		}
		switch o.(type) {
		case *corev1.ServiceAccount, *corev1.ConfigMap, *appsv1.DaemonSet, *rbacv1.Role, *rbacv1.RoleBinding:
			if meta.GetNamespace() != m.namespace {
				t.Errorf("%T in namespace %q, the kustomization's is %q", o, meta.GetNamespace(), m.namespace)
			}
		}
	}
	for _, want := range []string{"*v1.Namespace", "*v1.ServiceAccount", "*v1.ConfigMap", "*v1.DaemonSet",
		"*v1.CustomResourceDefinition", "*v1.ClusterRole", "*v1.ValidatingAdmissionPolicy", "*v1alpha1.KedgeClusterPosture"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among %v", want, kinds)
		}
	}

	// The decoder is strict: a misspelt field is refused, not dropped.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndatta: {}\n"), 0o644)
	if _, _, err := decoder(t).Decode(must(os.ReadFile(bad)), nil, nil); err == nil || !runtime.IsStrictDecodingError(err) {
		t.Errorf("unknown field decoded without a strict error: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// mountsOf maps a container's mount paths to the host paths behind them.
func mountsOf(t *testing.T, ds *appsv1.DaemonSet, c corev1.Container) map[string]string {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	out := map[string]string{}
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			t.Fatalf("container %s mounts undefined volume %s", c.Name, vm.Name)
		}
		switch {
		case v.HostPath != nil:
			out[vm.MountPath] = v.HostPath.Path
		case v.ConfigMap != nil:
			out[vm.MountPath] = "configmap:" + v.ConfigMap.Name
		default:
			t.Fatalf("volume %s: neither hostPath nor configMap", v.Name)
		}
	}
	return out
}

func container(t *testing.T, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// checkRoot checks a container runs as uid 0, unprivileged, no escalation,
// read-only root, all capabilities dropped but exactly caps.
func checkRoot(t *testing.T, c corev1.Container, caps ...corev1.Capability) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.Capabilities == nil {
		t.Errorf("%s: no securityContext running as root with capabilities", c.Name)
		return
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s is privileged", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s allows privilege escalation", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s has a writable root filesystem", c.Name)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s drops %v, want ALL", c.Name, sc.Capabilities.Drop)
	}
	got := slices.Sorted(slices.Values(sc.Capabilities.Add))
	if want := slices.Sorted(slices.Values(caps)); !slices.Equal(got, want) {
		t.Errorf("%s adds capabilities %v, want exactly %v", c.Name, got, want)
	}
}

func TestDaemonSetInvariants(t *testing.T) {
	m := load(t)
	var cm *corev1.ConfigMap
	var sa *corev1.ServiceAccount
	for _, o := range m.objs {
		switch v := o.(type) {
		case *corev1.ConfigMap:
			cm = v
		case *corev1.ServiceAccount:
			sa = v
		}
	}
	if cm == nil || sa == nil {
		t.Fatal("no ConfigMap or ServiceAccount")
	}
	bins := buildBinaries(t)
	for name, ds := range m.variants {
		t.Run(name, func(t *testing.T) {
			spec := ds.Spec.Template.Spec
			if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("hostNetwork %v, dnsPolicy %s: want the host network with cluster DNS", spec.HostNetwork, spec.DNSPolicy)
			}
			if spec.ServiceAccountName != sa.Name {
				t.Errorf("service account %q, the manifests define %q", spec.ServiceAccountName, sa.Name)
			}
			if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Operator == corev1.TolerationOpExists && tl.Key == "" }) {
				t.Error("does not tolerate every taint: the CNI plugin is what makes a node Ready")
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if !m.images[c.Image] {
					t.Errorf("container %s image %q is not one the kustomization's images rewrite", c.Name, c.Image)
				}
			}
			used := map[string]bool{}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				for _, vm := range c.VolumeMounts {
					used[vm.Name] = true
				}
			}
			for _, v := range spec.Volumes {
				if !used[v.Name] {
					t.Errorf("volume %s is mounted by no container", v.Name)
				}
			}

			d := container(t, spec.Containers, "kedge-daemon")
			checkRoot(t, d, "NET_ADMIN", "BPF")
			cfg := daemonConfig(t, d, cm, mountsOf(t, ds, d))
			wantMesh := "embedded"
			if name == "wg-sidecar" {
				wantMesh = "external"
			}
			if cfg.MeshDevice != wantMesh {
				t.Errorf("daemon mesh-device %q, want %q", cfg.MeshDevice, wantMesh)
			}
			checkProbes(t, bins, d, cfg.Socket)

			init := container(t, spec.InitContainers, "install-cni")
			checkRoot(t, init)
			checkInstallCNI(t, bins, init, mountsOf(t, ds, init), cfg.Socket)

			if name == "wg-sidecar" {
				wg := container(t, spec.InitContainers, "kedge-wg")
				if wg.RestartPolicy == nil || *wg.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Error("kedge-wg is not a native sidecar (init container with restartPolicy Always)")
				}
				checkRoot(t, wg, "NET_ADMIN")
				if !slices.Contains(wg.Args, "-interface="+wgmesh.DefaultInterface) {
					t.Errorf("kedge-wg args %q do not host the mesh's default interface %s", wg.Args, wgmesh.DefaultInterface)
				}
				wm, dm := mountsOf(t, ds, wg), mountsOf(t, ds, d)
				for _, p := range []string{"/var/run/wireguard", "/dev/net/tun"} {
					if wm[p] == "" || wm[p] != dm[p] {
						t.Errorf("%s: sidecar mounts %q, daemon %q: they must share the host's", p, wm[p], dm[p])
					}
				}
			} else if slices.ContainsFunc(spec.InitContainers, func(c corev1.Container) bool { return c.Name == "kedge-wg" }) {
				t.Error("the base DaemonSet has the kedge-wg sidecar; it is the component's")
			}
		})
	}
	checkRBAC(t, m, sa)
}

// daemonConfig parses the daemon container's args as kedge-daemon does,
// with the ConfigMap's files where the container mounts them, and checks
// every path it uses lies on the mount the manifests meant for it.
func daemonConfig(t *testing.T, d corev1.Container, cm *corev1.ConfigMap, mounts map[string]string) config.Config {
	t.Helper()
	cfgDir := ""
	for mp, src := range mounts {
		if src == "configmap:"+cm.Name {
			cfgDir = mp
		}
	}
	if cfgDir == "" {
		t.Fatalf("daemon does not mount ConfigMap %s", cm.Name)
	}
	local := t.TempDir()
	for k, v := range cm.Data {
		// Inside the pod the files are at cfgDir; here, in local.
		v = strings.ReplaceAll(v, cfgDir+"/", local+"/")
		if err := os.WriteFile(filepath.Join(local, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	for _, e := range d.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			env[e.Name] = "node-under-test"
		}
	}
	var args []string
	for _, a := range d.Args {
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		args = append(args, strings.ReplaceAll(a, cfgDir+"/", local+"/"))
	}
	cfg, err := config.Parse(args)
	if err != nil {
		t.Fatalf("kedge-daemon %q: %v", args, err)
	}
	if cfg.NodeName != "node-under-test" {
		t.Errorf("node name %q: not the pod's spec.nodeName", cfg.NodeName)
	}
	if _, err := auth.LoadPolicy(cfg.Policy); err != nil {
		t.Errorf("the ConfigMap's policy: %v", err)
	}
	under := func(what, p, mount, host string) {
		t.Helper()
		if mounts[mount] != host || !strings.HasPrefix(p, mount+"/") && p != mount {
			t.Errorf("%s %q: want it under %s, a mount of the host's %s (mounts %v)", what, p, mount, host, mounts)
		}
	}
	under("socket", cfg.Socket, "/run/kedge", "/run/kedge")
	under("data-dir", cfg.DataDir, "/var/lib/kedge", "/var/lib/kedge")
	under("bpf-pin-dir", cfg.BPFPinDir, "/sys/fs/bpf", "/sys/fs/bpf")
	under("shm-path", cfg.ShmPath, "/host/dev/shm", "/dev/shm")
	if !cfg.KubeInCluster {
		t.Error("the daemon does not join the cluster engine (kube-in-cluster)")
	}
	if cfg.Dataplane != "auto" {
		t.Errorf("dataplane %q, want auto", cfg.Dataplane)
	}
	for _, p := range []string{"/dev/net/tun", "/var/run/wireguard"} {
		if mounts[p] != p {
			t.Errorf("daemon mounts %q at %s, want the host's", mounts[p], p)
		}
	}
	return cfg
}

// checkProbes runs each probe's command with the real binary against a
// socket nobody serves: the flags must parse (exit 1, not 2).
func checkProbes(t *testing.T, bins map[string]string, d corev1.Container, socket string) {
	t.Helper()
	for what, p := range map[string]*corev1.Probe{"liveness": d.LivenessProbe, "readiness": d.ReadinessProbe, "startup": d.StartupProbe} {
		if p == nil || p.Exec == nil || len(p.Exec.Command) < 2 {
			t.Errorf("no %s exec probe", what)
			continue
		}
		cmd := p.Exec.Command
		if cmd[0] != "/usr/local/bin/kedge-daemon" || cmd[1] != "health" {
			t.Errorf("%s probe %q is not kedge-daemon health", what, cmd)
			continue
		}
		if !slices.Contains(cmd, "--socket="+socket) {
			t.Errorf("%s probe %q does not check the daemon's socket %s", what, cmd, socket)
		}
		if got, want := slices.Contains(cmd, "--ready"), what == "readiness"; got != want {
			t.Errorf("%s probe %q: --ready %v, want %v", what, cmd, got, want)
		}
		args := slices.Clone(cmd[1:])
		for i, a := range args {
			if strings.HasPrefix(a, "--socket=") {
				args[i] = "--socket=" + filepath.Join(t.TempDir(), "none.sock")
			}
		}
		err := exec.Command(bins["kedge-daemon"], args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s probe %q with no daemon: %v, want exit 1 (unhealthy, flags fine)", what, cmd, err)
		}
	}
}

// checkInstallCNI runs the init container's command with its host paths
// mapped to temp dirs: the plugin and a conflist naming the daemon's
// socket must land in the host's CNI dirs.
func checkInstallCNI(t *testing.T, bins map[string]string, c corev1.Container, mounts map[string]string, socket string) {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "install-cni" || len(c.Command) != 0 {
		t.Fatalf("init container runs %q %q, want the image's kedge-daemon install-cni", c.Command, c.Args)
	}
	host := t.TempDir()
	args := slices.Clone(c.Args)
	for i, a := range args {
		for mp, hp := range mounts {
			a = strings.ReplaceAll(a, "="+mp, "="+filepath.Join(host, hp))
		}
		args[i] = strings.ReplaceAll(a, "=/usr/local/bin/kedge-cni", "="+bins["kedge-cni"])
	}
	for _, hp := range mounts {
		os.MkdirAll(filepath.Join(host, hp), 0o755)
	}
	if out, err := exec.Command(bins["kedge-daemon"], args...).CombinedOutput(); err != nil {
		t.Fatalf("kedge-daemon %q: %v\n%s", args, err, out)
	}
	if _, err := os.Stat(filepath.Join(host, "/opt/cni/bin/kedge")); err != nil {
		t.Errorf("install-cni put no plugin in the host's /opt/cni/bin: %v", err)
	}
	confs, _ := filepath.Glob(filepath.Join(host, "/etc/cni/net.d/*.conflist"))
	if len(confs) != 1 {
		t.Fatalf("install-cni wrote %d conflists into the host's /etc/cni/net.d", len(confs))
	}
	if b, _ := os.ReadFile(confs[0]); !bytes.Contains(b, []byte(`"`+socket+`"`)) {
		t.Errorf("conflist does not name the daemon's socket %s:\n%s", socket, b)
	}
}

// checkRBAC: the service account gets exactly what the daemon's cluster
// engine reads and writes (issue 19), and a token because that is
// something. Widening any rule fails here.
func checkRBAC(t *testing.T, m manifests, sa *corev1.ServiceAccount) {
	t.Helper()
	kedge := "kedge.guildhouse.dev"
	read := []string{"get", "list", "watch"}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{kedge}, Resources: []string{"kedgenodes"}, Verbs: append(slices.Clone(read), "create")},
		{APIGroups: []string{kedge}, Resources: []string{"kedgenodes/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{kedge}, Resources: []string{"kedgeclusterpostures"}, Verbs: read},
		{APIGroups: []string{kedge}, Resources: []string{"kedgeclusterpostures/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes", "pods", "namespaces"}, Verbs: read},
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, o := range m.objs {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			roles["ClusterRole/"+r.Name] = r.Rules
		case *rbacv1.Role:
			roles["Role/"+r.Namespace+"/"+r.Name] = r.Rules
		}
	}
	var got []rbacv1.PolicyRule
	bound := func(subjects []rbacv1.Subject, ref rbacv1.RoleRef, ns string) {
		for _, s := range subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa.Name && s.Namespace == sa.Namespace {
				key := ref.Kind + "/" + ref.Name
				if ref.Kind == "Role" {
					key = "Role/" + ns + "/" + ref.Name
				}
				rules, ok := roles[key]
				if !ok {
					t.Errorf("binding to %s, which the manifests do not define", key)
				}
				got = append(got, rules...)
			}
		}
	}
	for _, o := range m.objs {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			bound(b.Subjects, b.RoleRef, "")
		case *rbacv1.RoleBinding:
			bound(b.Subjects, b.RoleRef, b.Namespace)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("service account %s is granted %v, want exactly %v", sa.Name, got, want)
	}
	mounted := sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken
	for _, ds := range m.variants {
		if p := ds.Spec.Template.Spec.AutomountServiceAccountToken; p != nil {
			mounted = *p
		}
		if mounted != (len(want) > 0) {
			t.Errorf("service account token mounted %v while the daemon's API rules are %v", mounted, want)
		}
	}
}

// buildBinaries builds kedge-daemon and kedge-cni once for the checks.
func buildBinaries(t *testing.T) map[string]string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH: cannot build the binaries the manifests run")
	}
	dir := t.TempDir()
	out := map[string]string{}
	for name, pkg := range map[string]string{"kedge-daemon": "../../server/cmd/kedge-daemon", "kedge-cni": "../../cni/cmd/kedge-cni"} {
		bin := filepath.Join(dir, name)
		if b, err := exec.Command(gobin, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		out[name] = bin
	}
	return out
}
