// Package config owns the daemon's settings: their defaults, the YAML
// file that may set them (--config) and the command-line flags that win
// over the file, plus the defaults that depend on other settings (socket
// and users file under the data dir, node name from the hostname).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/internal/timeslice"
	"github.com/guildhouse-co/kedge/server/gcpolicy"
)

// DefaultSocket is where the unix socket goes when /run/kedge is usable.
const DefaultSocket = "/run/kedge/kedge.sock"

// Config is everything the daemon is told. Field names are the YAML keys
// and the flag names.
type Config struct {
	Listen      string `yaml:"listen"`
	Socket      string `yaml:"socket"`
	SocketGroup string `yaml:"socket-group"`
	DataDir     string `yaml:"data-dir"`
	NodeName    string `yaml:"node-name"`
	TLSCert     string `yaml:"tls-cert"`
	TLSKey      string `yaml:"tls-key"`
	TLSCA       string `yaml:"tls-ca"`
	Insecure    bool   `yaml:"insecure"`
	NetNS       string `yaml:"netns"`
	Users       string `yaml:"users"`
	Policy      string `yaml:"policy"`
	MaxMsgBytes int    `yaml:"max-msg-bytes"`
	LogLevel    string `yaml:"log-level"`
	// Dataplane selects the backends: "auto" starts every backend this
	// machine allows (see the probe); "off" starts none, so the node
	// serves its tree without touching the kernel.
	Dataplane string `yaml:"dataplane"`
	// ShmPath is the VPP governance segment ("off": none).
	ShmPath string `yaml:"shm-path"`
	// BPFPinDir holds the posture_level map and its companions ("off": none).
	BPFPinDir string `yaml:"bpf-pin-dir"`
	// EnforceCgroup is the cgroup v2 directory whose egress the posture
	// program guards (empty: the program is not attached).
	EnforceCgroup string `yaml:"enforce-cgroup"`
	// MeshDevice says who owns the WireGuard device: "embedded" (the
	// daemon hosts it; a restart drops tunnels) or "external" (a sidecar
	// such as kedge-wg hosts it and the daemon only configures it).
	MeshDevice string `yaml:"mesh-device"`
	// GRIBIClass is the route class of the routes gRIBI sessions inject
	// (the posture levels withhold routes by class).
	GRIBIClass string `yaml:"gribi-class"`
	// Notary records artifacts ("on") or not ("off"); notary.go.
	Notary string `yaml:"notary"`
	// Quartermaster is where the notary ships its log (host:port; empty:
	// not shipped), and how it connects.
	Quartermaster         string `yaml:"quartermaster"`
	QuartermasterCA       string `yaml:"quartermaster-ca"`
	QuartermasterCert     string `yaml:"quartermaster-cert"`
	QuartermasterKey      string `yaml:"quartermaster-key"`
	QuartermasterInsecure bool   `yaml:"quartermaster-insecure"`
	// UnderlayCredentials is the directory holding the files that
	// /kedge/underlay/devices' *-file leaves name (CA, client certificate
	// and key, password); the tree never holds secrets.
	UnderlayCredentials string `yaml:"underlay-credentials"`
	// Shellstream: the Workload API of the local SPIRE agent
	// ("unix:///run/spire/agent.sock"; empty: no Shellstream service),
	// this node's identity (the SAT audience; default kedge/<node-name>),
	// the endpoint of each session type ("management=unix:/run/x.sock,
	// operator=127.0.0.1:2222") and the drain grace period.
	SPIFFESocket         string        `yaml:"spiffe-socket"`
	ShellstreamID        string        `yaml:"shellstream-id"`
	ShellstreamEndpoints string        `yaml:"shellstream-endpoints"`
	ShellstreamDrain     time.Duration `yaml:"shellstream-drain"`
	// MetricsListen is the HTTP listener of Prometheus metrics, /healthz,
	// /readyz and the status page ("off": none). It is loopback by
	// default: whoever reaches it reads all of it, so a wider address is
	// an explicit choice.
	MetricsListen string `yaml:"metrics-listen"`
	// Kubeconfig or KubeInCluster turn on the Kubernetes cluster engine
	// (server/kube): discovery through KedgeNode objects, the cluster
	// posture level, pod metadata. Neither: the node stands alone.
	Kubeconfig    string `yaml:"kubeconfig"`
	KubeInCluster bool   `yaml:"kube-in-cluster"`
	// KubeEndpoint overrides the endpoint the node publishes (host or
	// host:port); KubePosture names the KedgeClusterPosture to follow.
	KubeEndpoint string `yaml:"kube-endpoint"`
	KubePosture  string `yaml:"kube-posture"`
	// GCPercent and MemoryLimit are the garbage collector's policy
	// (server/gcpolicy): the heap's growth between cycles as a percent of
	// its live size, and the soft memory limit ("auto": 90% of the
	// cgroup's limit, if it has one; "off"; or a size such as 900Mi).
	// GOGC and GOMEMLIMIT in the environment win over both.
	GCPercent   int    `yaml:"gc-percent"`
	MemoryLimit string `yaml:"memory-limit"`
	// TimeSlice is the kernel time slice asked for every thread of the
	// daemon (internal/timeslice): 0 leaves the kernel's default.
	TimeSlice time.Duration `yaml:"time-slice"`
}

// RouteClasses are the values of kt:route-class, which GRIBIClass must be
// one of.
var RouteClasses = []string{"management", "incident", "monitoring", "overlay", "underlay", "pod"}

// Defaults returns the built-in settings, before resolution.
func Defaults() Config {
	return Config{
		Listen:      "127.0.0.1:9339",
		DataDir:     "/var/lib/kedge",
		MaxMsgBytes: 64 << 20,
		LogLevel:    "info",
		Dataplane:   "auto",
		ShmPath:     "/dev/shm/kedge-governance",
		BPFPinDir:   "/sys/fs/bpf/kedge",
		MeshDevice:  "embedded",
		GRIBIClass:  "underlay",
		Notary:      "on",
		GCPercent:   gcpolicy.DefaultPercent,
		MemoryLimit: "auto",
		TimeSlice:   timeslice.Default,
		// 9339 is gNMI's; the next port keeps the pair easy to remember.
		MetricsListen: "127.0.0.1:9340",
		// The seed leaves the grace open; 30 s lets an interactive
		// command finish and stays far inside the 5 s-per-step overlay
		// budget because the step only starts the drain.
		ShellstreamDrain: 30 * time.Second,
	}
}

// ErrVersion is returned by Parse when --version was given: the caller
// prints the version and exits 0, as for flag.ErrHelp.
var ErrVersion = errors.New("version requested")

// Parse builds the configuration from args (without the program name):
// defaults, then the --config file if given, then the flags that were set
// explicitly. It does not resolve derived defaults (see Resolve). For
// --help it returns flag.ErrHelp and for --version ErrVersion, printing
// nothing: the caller owns the help text (see FlagSet).
func Parse(args []string) (Config, error) {
	// First pass: find --config only.
	pre := flag.NewFlagSet("kedge-daemon", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	cfgFile := pre.String("config", "", "")
	pre.Bool("version", false, "")
	bind(pre, &Config{})
	if err := pre.Parse(args); err != nil {
		// Reported by the second pass.
		*cfgFile = ""
	}

	c := Defaults()
	if *cfgFile != "" {
		if err := c.load(*cfgFile); err != nil {
			return Config{}, err
		}
	}
	// Second pass binds to c, whose current values (file over defaults)
	// become the flag defaults, so only flags given on the command line
	// overwrite them.
	fs := FlagSet(&c)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if fs.Lookup("version").Value.String() == "true" {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

// FlagSet returns the daemon's flags bound to c (their defaults are c's
// values), including --config and --version, which are not settings. Its
// output is discarded until the caller sets one.
func FlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("kedge-daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "YAML file with any of these settings (keys are the flag names); flags win")
	fs.Bool("version", false, "print the version and exit")
	bind(fs, c)
	return fs
}

// Keys returns the config file's keys (the YAML names of Config's
// fields), sorted.
func Keys() []string {
	var keys []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" {
		return ""
	}
	return k
}

// load applies the config file at path over c. Errors name the file,
// the line and the key: an unknown key lists the known ones, and a value
// of the wrong kind says which key wanted what.
func (c *Config) load(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file: nothing set
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("parse config %s: line %d: want a mapping of settings (key: value), like the flags", path, top.Line)
	}
	fields := map[string]reflect.Value{}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if k := yamlKey(v.Type().Field(i)); k != "" {
			fields[k] = v.Field(i)
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		kn, vn := top.Content[i], top.Content[i+1]
		f, ok := fields[kn.Value]
		if !ok {
			return fmt.Errorf("parse config %s: line %d: unknown key %q (known keys: %s)", path, kn.Line, kn.Value, strings.Join(Keys(), ", "))
		}
		if seen[kn.Value] {
			return fmt.Errorf("parse config %s: line %d: key %q is set twice", path, kn.Line, kn.Value)
		}
		seen[kn.Value] = true
		if err := vn.Decode(f.Addr().Interface()); err != nil {
			return fmt.Errorf("parse config %s: line %d: key %q wants %s", path, vn.Line, kn.Value, kindName(f.Type()))
		}
	}
	return nil
}

func kindName(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 100us, 2ms or 30s"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a whole number"
	}
	return "a string"
}

func bind(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "TCP address of the gNMI listener (empty: none)")
	fs.StringVar(&c.Socket, "socket", c.Socket, "unix socket path (default "+DefaultSocket+", else <data-dir>/kedge.sock; \"off\": none)")
	fs.StringVar(&c.SocketGroup, "socket-group", c.SocketGroup, "group (name or gid) owning the 0660 unix socket")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the tree store, users, TLS material")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "node name (default: hostname)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "server certificate (PEM); default: self-signed in <data-dir>/tls")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "server private key (PEM)")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "CA bundle (PEM); when set, clients must present a certificate it signed (mTLS)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "plaintext TCP (loopback addresses only)")
	fs.StringVar(&c.NetNS, "netns", c.NetNS, "network namespace the dataplane backends act in")
	fs.StringVar(&c.Users, "users", c.Users, "users file (default <data-dir>/users.yaml)")
	fs.StringVar(&c.Policy, "policy", c.Policy, "tier policy file (default: built-in policy)")
	fs.IntVar(&c.MaxMsgBytes, "max-msg-bytes", c.MaxMsgBytes, "largest gRPC message accepted")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.Dataplane, "dataplane", c.Dataplane, "auto: start every backend this machine allows; off: none")
	fs.StringVar(&c.ShmPath, "shm-path", c.ShmPath, "VPP governance shared-memory segment (\"off\": none)")
	fs.StringVar(&c.BPFPinDir, "bpf-pin-dir", c.BPFPinDir, "bpffs directory of the posture_level map (\"off\": none)")
	fs.StringVar(&c.MeshDevice, "mesh-device", c.MeshDevice, "WireGuard device owner: embedded (the daemon hosts it) or external (a sidecar such as kedge-wg does)")
	fs.StringVar(&c.GRIBIClass, "gribi-class", c.GRIBIClass, "route class of the routes gRIBI injects: "+strings.Join(RouteClasses, ", "))
	fs.StringVar(&c.SPIFFESocket, "spiffe-socket", c.SPIFFESocket, "SPIRE agent Workload API address for Shellstream (unix:///path; empty: no Shellstream)")
	fs.StringVar(&c.ShellstreamID, "shellstream-id", c.ShellstreamID, "this node's Shellstream identity, the audience SATs must name (default kedge/<node-name>)")
	fs.StringVar(&c.ShellstreamEndpoints, "shellstream-endpoints", c.ShellstreamEndpoints, "local endpoint per session type: type=unix:/path or type=127.0.0.1:port, comma separated")
	fs.DurationVar(&c.ShellstreamDrain, "shellstream-drain", c.ShellstreamDrain, "grace a drained Shellstream session gets before teardown")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "HTTP address of Prometheus /metrics, /healthz, /readyz and the status page (\"off\": none)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig file of the Kubernetes API to join (empty: standalone unless --kube-in-cluster)")
	fs.BoolVar(&c.KubeInCluster, "kube-in-cluster", c.KubeInCluster, "join the Kubernetes API this pod runs in (service account)")
	fs.StringVar(&c.KubeEndpoint, "kube-endpoint", c.KubeEndpoint, "address peers reach this node's WireGuard device at (default: the Node's annotation or InternalIP)")
	fs.StringVar(&c.KubePosture, "kube-posture", c.KubePosture, "name of the KedgeClusterPosture to follow (default cluster)")
	fs.StringVar(&c.EnforceCgroup, "enforce-cgroup", c.EnforceCgroup, "cgroup v2 directory whose egress the level-1 program guards (empty: not attached)")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "heap growth between garbage collections, percent of the live heap (negative: only near memory-limit; GOGC wins)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft memory limit of the Go runtime: auto (90% of the cgroup's limit, if any), off, or a size such as 900Mi (GOMEMLIMIT wins)")
	fs.DurationVar(&c.TimeSlice, "time-slice", c.TimeSlice, "kernel time slice of the daemon's threads, 100us-100ms (Linux 6.12 or later; 0: the kernel's default)")
	bindNotary(fs, c)
	fs.StringVar(&c.UnderlayCredentials, "underlay-credentials", c.UnderlayCredentials, "directory of the underlay devices' credential files (default <data-dir>/underlay)")
}

// Resolve fills the defaults that depend on other settings and checks
// the result. usableDir reports whether a directory can hold the socket
// (injected so tests need not touch /run).
func (c *Config) Resolve(hostname func() (string, error), usableDir func(string) error) error {
	if c.DataDir == "" {
		return errors.New("resolve config: --data-dir is empty")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	c.DataDir = abs
	if c.NodeName == "" {
		h, err := hostname()
		if err != nil {
			return fmt.Errorf("resolve node name: %w", err)
		}
		c.NodeName = h
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
		if usableDir(filepath.Dir(DefaultSocket)) != nil {
			c.Socket = filepath.Join(c.DataDir, "kedge.sock")
		}
	}
	if c.Users == "" {
		c.Users = filepath.Join(c.DataDir, "users.yaml")
	}
	if c.UnderlayCredentials == "" {
		c.UnderlayCredentials = filepath.Join(c.DataDir, "underlay")
	}
	if c.UnderlayCredentials, err = filepath.Abs(c.UnderlayCredentials); err != nil {
		return fmt.Errorf("resolve underlay credentials dir: %w", err)
	}
	if c.ShellstreamID == "" {
		c.ShellstreamID = "kedge/" + c.NodeName
	}
	if c.ShellstreamDrain <= 0 {
		return fmt.Errorf("resolve config: --shellstream-drain %s must be positive", c.ShellstreamDrain)
	}
	if c.MeshDevice != "embedded" && c.MeshDevice != "external" {
		return fmt.Errorf("resolve config: --mesh-device %q: want embedded or external", c.MeshDevice)
	}
	if !slices.Contains(RouteClasses, c.GRIBIClass) {
		return fmt.Errorf("resolve config: --gribi-class %q: want one of %s", c.GRIBIClass, strings.Join(RouteClasses, ", "))
	}
	if c.Dataplane != "auto" && c.Dataplane != "off" {
		return fmt.Errorf("resolve config: --dataplane %q: want auto or off", c.Dataplane)
	}
	if c.MaxMsgBytes <= 0 {
		return fmt.Errorf("resolve config: --max-msg-bytes %d must be positive", c.MaxMsgBytes)
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if c.MemoryLimit != "auto" && c.MemoryLimit != "off" {
		if _, err := gcpolicy.ParseLimit(c.MemoryLimit); err != nil {
			return fmt.Errorf("resolve config: --memory-limit: %w", err)
		}
	}
	if c.TimeSlice != 0 && (c.TimeSlice < timeslice.Min || c.TimeSlice > timeslice.Max) {
		return fmt.Errorf("resolve config: --time-slice %s: want 0 or %s to %s", c.TimeSlice, timeslice.Min, timeslice.Max)
	}
	if c.Kubeconfig != "" && c.KubeInCluster {
		return errors.New("resolve config: --kubeconfig conflicts with --kube-in-cluster")
	}
	if c.Insecure && (c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "") {
		return errors.New("resolve config: --insecure conflicts with --tls-cert/--tls-key/--tls-ca")
	}
	return c.resolveNotary()
}

// MetricsOff reports whether the metrics listener is disabled.
func (c *Config) MetricsOff() bool { return c.MetricsListen == "off" || c.MetricsListen == "" }

// SocketOff reports whether the unix socket is disabled.
func (c *Config) SocketOff() bool { return c.Socket == "off" }

// Level parses LogLevel.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		return 0, fmt.Errorf("resolve config: --log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}
