package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

const notaryUsage = `usage: kedge-daemon notary <verb> [flags]

  query       list artifacts from the running daemon by type, time and level
  get INDEX   fetch one artifact with its inclusion proof, and check the proof
  checkpoint  print the latest signed checkpoint (save it to verify later)
  verify      check the whole local log offline: every frame, signature and
              tree hash, and optionally that it extends a checkpoint

Run a verb with -h for its flags.`

// notaryCmd runs "kedge-daemon notary ...": queries go to the running
// daemon's NotaryService (read tier), verify reads the files offline.
func notaryCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: a verb is missing\n%s", errUsage, notaryUsage)
	}
	if isHelp(args[0]) || args[0] == "help" {
		fmt.Fprintln(stdout, notaryUsage)
		return nil
	}
	verbs := map[string]func([]string, io.Writer, io.Writer) error{
		"query": notaryQuery, "get": notaryGet, "checkpoint": notaryCheckpoint, "verify": notaryVerify,
	}
	verb, ok := verbs[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown verb %q\n%s", errUsage, args[0], notaryUsage)
	}
	err := verb(args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the verb printed its flags
	}
	return err
}

// verbParse parses a verb's flags: -h prints them on stdout (and comes
// back as flag.ErrHelp), a bad flag is a usage error.
func verbParse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage of kedge-daemon %s:\n", fs.Name())
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// conn is how a notary verb reaches the daemon.
type conn struct {
	socket, addr, ca, user, pwFile string
	insecure, skipVerify           bool
}

func (c *conn) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.socket, "socket", config.DefaultSocket, "the daemon's unix socket (identity: your uid/gid)")
	fs.StringVar(&c.addr, "addr", "", "the daemon's TCP address instead of the socket")
	fs.BoolVar(&c.insecure, "insecure", false, "plaintext TCP (loopback daemons started with --insecure)")
	fs.StringVar(&c.ca, "tls-ca", "", "CA bundle that signed the daemon's certificate")
	fs.BoolVar(&c.skipVerify, "skip-verify", false, "do not verify the daemon's certificate (self-signed)")
	fs.StringVar(&c.user, "user", "", "user name for a password login over TCP")
	fs.StringVar(&c.pwFile, "password-file", "", "file holding the password")
}

func (c *conn) dial() (notaryv1.NotaryServiceClient, context.Context, func(), error) {
	ctx := context.Background()
	var cc *grpc.ClientConn
	var err error
	if c.addr == "" {
		cc, err = grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		creds := insecure.NewCredentials()
		if !c.insecure {
			tc := &tls.Config{InsecureSkipVerify: c.skipVerify} // only when the operator asks
			if c.ca != "" {
				pem, err := os.ReadFile(c.ca)
				if err != nil {
					return nil, nil, nil, fmt.Errorf("read CA: %w", err)
				}
				tc.RootCAs = x509.NewCertPool()
				if !tc.RootCAs.AppendCertsFromPEM(pem) {
					return nil, nil, nil, fmt.Errorf("read CA %s: no certificates", c.ca)
				}
			}
			creds = credentials.NewTLS(tc)
		}
		cc, err = grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to the daemon: %w", err)
	}
	if c.user != "" {
		pw, err := os.ReadFile(c.pwFile)
		if err != nil {
			cc.Close()
			return nil, nil, nil, fmt.Errorf("read password: %w", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "username", c.user, "password", strings.TrimSpace(string(pw)))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	return notaryv1.NewNotaryServiceClient(cc), ctx, func() { cancel(); cc.Close() }, nil
}

// artifactTypes are the --type values: mutation is a commit to the tree,
// device-push configuration pushed to network devices (the underlay).
var artifactTypes = map[string]qmv1.ArtifactType{
	"mutation":    qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION,
	"device-push": qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH,
	"transit":     qmv1.ArtifactType_ARTIFACT_TYPE_SESSION_TRANSIT,
	"forensic":    qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_FORENSIC_SNAPSHOT,
	"transition":  qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_TRANSITION,
}

const typeNames = "mutation (tree commits), device-push (underlay device pushes), transit, forensic, transition"

// parseTime takes RFC 3339 or nanoseconds since the epoch.
func parseTime(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("parse time %q: want RFC 3339 or nanoseconds since the epoch", s)
	}
	return t.UnixNano(), nil
}

func notaryQuery(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notary query", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c conn
	c.bind(fs)
	types := fs.String("type", "", "comma-separated: "+typeNames+" (default: all)")
	levels := fs.String("level", "", "comma-separated posture levels 1..5 the events happened at (default: all)")
	since := fs.String("since", "", "events at or after this time (RFC 3339 or ns)")
	until := fs.String("until", "", "events before this time (RFC 3339 or ns)")
	limit := fs.Int("limit", 0, "at most this many entries (default: all)")
	if err := verbParse(fs, args, stdout); err != nil {
		return err
	}
	req := &notaryv1.ListArtifactsRequest{PageSize: 1000}
	for _, t := range splitList(*types) {
		at, ok := artifactTypes[t]
		if !ok {
			return fmt.Errorf("query: unknown type %q (%s)", t, typeNames)
		}
		req.Types = append(req.Types, at)
	}
	for _, l := range splitList(*levels) {
		n, err := strconv.ParseUint(l, 10, 8)
		if err != nil || n < 1 || n > 5 {
			return fmt.Errorf("query: posture level %q: want 1..5", l)
		}
		req.PostureLevels = append(req.PostureLevels, uint32(n))
	}
	var err error
	if req.SinceUnixNano, err = parseTime(*since); err != nil {
		return err
	}
	if req.UntilUnixNano, err = parseTime(*until); err != nil {
		return err
	}
	cl, ctx, done, err := c.dial()
	if err != nil {
		return err
	}
	defer done()
	n := 0
	for {
		resp, err := cl.ListArtifacts(ctx, req)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		for _, e := range resp.GetEntries() {
			b, err := protojson.Marshal(e)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			if n++; *limit > 0 && n >= *limit {
				return nil
			}
		}
		if resp.GetNextIndex() == 0 {
			return nil
		}
		req.StartIndex = resp.GetNextIndex()
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadVerifier reads a verifier key file (key.pub) when given.
func loadVerifier(path string) (note.Verifier, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("read verifier key %s: %w", path, err)
	}
	return v, nil
}

func notaryGet(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notary get", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c conn
	c.bind(fs)
	keyFile := fs.String("key", "", "the notary's verifier key file (<data-dir>/notary/key.pub) to check the checkpoint's signature with (default: the key the daemon reports)")
	if err := verbParse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: get wants one entry index", errUsage)
	}
	idx, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("get: index %q: %w", fs.Arg(0), err)
	}
	v, err := loadVerifier(*keyFile)
	if err != nil {
		return err
	}
	cl, ctx, done, err := c.dial()
	if err != nil {
		return err
	}
	defer done()
	if v == nil {
		cp, err := cl.GetCheckpoint(ctx, &notaryv1.GetCheckpointRequest{})
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if v, err = note.NewVerifier(cp.GetVerifierKey()); err != nil {
			return fmt.Errorf("get: the daemon's verifier key: %w", err)
		}
	}
	resp, err := cl.GetArtifact(ctx, &notaryv1.GetArtifactRequest{Index: idx})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	cp, err := ledger.ParseCheckpoint(resp.GetCheckpointNote(), v)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	proof := make(tlog.RecordProof, len(resp.GetInclusionProof()))
	for i, h := range resp.GetInclusionProof() {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("get: proof hash %d has %d bytes", i, len(h))
		}
		copy(proof[i][:], h)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, int64(idx), tlog.RecordHash(resp.GetRawEntry())); err != nil {
		return fmt.Errorf("get: entry %d is NOT in the signed checkpoint of size %d: %w", idx, cp.Size, err)
	}
	b, err := protojson.Marshal(resp.GetEntry())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	fmt.Fprintf(stdout, "inclusion proof: ok (entry %d of %d, root %s, signed by %s)\n", idx, cp.Size, cp.Hash, v.Name())
	return nil
}

func notaryCheckpoint(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notary checkpoint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c conn
	c.bind(fs)
	if err := verbParse(fs, args, stdout); err != nil {
		return err
	}
	cl, ctx, done, err := c.dial()
	if err != nil {
		return err
	}
	defer done()
	cp, err := cl.GetCheckpoint(ctx, &notaryv1.GetCheckpointRequest{})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = stdout.Write(cp.GetNote())
	return err
}

func notaryVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notary verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", config.Defaults().DataDir, "the daemon's data directory")
	keyFile := fs.String("key", "", "verifier key file (default <data-dir>/notary/key.pub; give one kept elsewhere to trust nothing on this disk)")
	against := fs.String("checkpoint", "", "a signed checkpoint the log must extend (e.g. the last one Quartermaster acknowledged)")
	if err := verbParse(fs, args, stdout); err != nil {
		return err
	}
	dir := filepath.Join(*dataDir, "notary")
	v, err := loadVerifier(*keyFile)
	if err != nil {
		return err
	}
	if v == nil {
		if v, _, err = notary.LoadVerifier(dir); err != nil {
			return err
		}
	}
	var cp []byte
	if *against != "" {
		if cp, err = os.ReadFile(*against); err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
	}
	rep, err := ledger.Verify(filepath.Join(dir, "log"), v, cp)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "notary log %s: ok\n  origin %s\n  entries %d, checkpoints %d\n  last checkpoint: size %d, root %s, signed %s\n",
		filepath.Join(dir, "log"), rep.Origin, rep.Entries, rep.Checkpoints, rep.Last.Size, rep.Last.Hash, rep.Last.Time.UTC().Format(time.RFC3339Nano))
	if rep.TornBytes > 0 {
		fmt.Fprintf(stdout, "  a torn final write of %d bytes (never acknowledged) will be dropped at the next start\n", rep.TornBytes)
	}
	if rep.Against != nil {
		fmt.Fprintf(stdout, "  extends the given checkpoint: size %d, root %s\n", rep.Against.Size, rep.Against.Hash)
	}
	return nil
}
