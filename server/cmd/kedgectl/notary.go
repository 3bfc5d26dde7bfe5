package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"

	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// artifactTypes are the query's --type names.
// mutation is a commit to the tree, device-push configuration pushed to
// network devices (the underlay).
var artifactTypes = map[string]qmv1.ArtifactType{
	"mutation":    qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION,
	"device-push": qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH,
	"transit":     qmv1.ArtifactType_ARTIFACT_TYPE_SESSION_TRANSIT,
	"forensic":    qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_FORENSIC_SNAPSHOT,
	"transition":  qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_TRANSITION,
}

// typeNames lists the --type names in the order help shows them.
var typeNames = []string{"mutation", "device-push", "transit", "forensic", "transition"}

func (a *app) notaryCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "notary",
		Short: "Query the node's notary log and verify it against its signed checkpoints",
		Long: `notary reads the node's notary log over its NotaryService: the Quartermaster artifacts
(config mutations, underlay device pushes, Shellstream transits, posture transitions, forensic
snapshots) filtered by
type, posture level and time, and a verification of every entry against the log's signed
checkpoint, with a progress bar.`,
		Example: `  kedgectl notary query --type transit --level 3
  kedgectl notary verify --key notary-key.pub --checkpoint last-acked.note`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(a.notaryQueryCmd(), a.notaryVerifyCmd())
	return c
}

// queryRow is one entry as notary query prints it.
type queryRow struct {
	Index uint64
	Event time.Time
	Level uint32
	Type  string
	What  string
}

func (a *app) notaryQueryCmd() *cobra.Command {
	var types, levels, since, until string
	var limit int
	c := &cobra.Command{
		Use:   "query",
		Short: "List the log's artifacts by type, posture level and time, with a progress bar",
		Long: `query lists the notary log's entries in log order: for each, its index, when the event
happened, the posture level it happened at and what it was. -o json and -o yaml print the
entries whole (protobuf JSON). A progress bar on stderr follows the log's pages.`,
		Example: `  kedgectl notary query
  kedgectl notary query --type transit --level 3,2 --since 2026-01-02T15:04:05Z
  kedgectl notary query --type mutation --limit 10 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &notaryv1.ListArtifactsRequest{PageSize: 500}
			for _, t := range splitList(types) {
				at, ok := artifactTypes[t]
				if !ok {
					return fmt.Errorf("%w: --type %q: want one of %s", errUsage, t, strings.Join(typeNames, ", "))
				}
				req.Types = append(req.Types, at)
			}
			for _, l := range splitList(levels) {
				n, err := parseLevel(l)
				if err != nil {
					return err
				}
				req.PostureLevels = append(req.PostureLevels, uint32(n))
			}
			var err error
			if req.SinceUnixNano, err = parseWhen(since); err != nil {
				return err
			}
			if req.UntilUnixNano, err = parseWhen(until); err != nil {
				return err
			}
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			return a.notaryQuery(cmd.Context(), notaryv1.NewNotaryServiceClient(n.cc), req, limit)
		},
	}
	f := c.Flags()
	f.StringVar(&types, "type", "", "comma-separated: "+strings.Join(typeNames, ", ")+" (default: all)")
	f.StringVar(&levels, "level", "", "comma-separated posture levels the events happened at (default: all)")
	f.StringVar(&since, "since", "", "events at or after this time (RFC 3339)")
	f.StringVar(&until, "until", "", "events before this time (RFC 3339)")
	f.IntVar(&limit, "limit", 0, "at most this many entries (0: all)")
	c.RegisterFlagCompletionFunc("type", fixedCompletions(typeNames...))
	return c
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

func parseWhen(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%w: time %q: want RFC 3339 (2026-01-02T15:04:05Z)", errUsage, s)
	}
	return t.UnixNano(), nil
}

func (a *app) notaryQuery(ctx context.Context, cl notaryv1.NotaryServiceClient, req *notaryv1.ListArtifactsRequest, limit int) error {
	var entries []*qmv1.LogEntry
	var bar *progress
	for {
		rctx, cancel := a.ctx(ctx)
		resp, err := cl.ListArtifacts(rctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("query the notary: %w", err)
		}
		if bar == nil {
			bar = newProgress(a.stderr, "entries scanned", int(resp.GetTreeSize()), a.now)
		}
		entries = append(entries, resp.GetEntries()...)
		next := resp.GetNextIndex()
		if limit > 0 && len(entries) >= limit {
			entries = entries[:limit]
			next = 0
		}
		if next == 0 {
			bar.finish(int(resp.GetTreeSize()))
			break
		}
		bar.set(int(next))
		req.StartIndex = next
	}
	if a.output != "table" {
		// Whole entries, as protobuf JSON.
		out := make([]json.RawMessage, len(entries))
		for i, e := range entries {
			b, err := protojson.Marshal(e)
			if err != nil {
				return err
			}
			out[i] = b
		}
		return a.emit(out, nil)
	}
	return a.emit(nil, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "INDEX\tEVENT\tLEVEL\tTYPE\tWHAT")
		for _, e := range entries {
			r := describeEntry(e)
			fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\n", r.Index, r.Event.UTC().Format(time.RFC3339Nano), r.Level, r.Type, r.What)
		}
	})
}

// describeEntry says what a log entry records, in a line.
func describeEntry(e *qmv1.LogEntry) queryRow {
	r := queryRow{Index: e.GetIndex(), Event: time.Unix(0, e.GetEventUnixNano()), Level: e.GetPostureLevel()}
	switch x := e.GetArtifact().(type) {
	case *qmv1.LogEntry_NetworkMutation:
		m := x.NetworkMutation
		if d := m.GetDevicePush(); d != nil {
			r.Type = "device-push"
			r.What = fmt.Sprintf("%s %s by %s (%s) on %s: %s, %d changes", strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(d.GetKind().String(), "DEVICE_PUSH_KIND_"), "_", " ")),
				d.GetMutationId(), m.GetWriter().GetIdentity(), m.GetWriter().GetTier(), strings.Join(d.GetDevices(), ","),
				strings.ToLower(strings.TrimPrefix(d.GetResult().String(), "DEVICE_PUSH_RESULT_")), m.GetChangeCount())
			break
		}
		r.Type = "mutation"
		r.What = fmt.Sprintf("commit %d by %s (%s): %d changes", m.GetCommitSequence(), m.GetWriter().GetIdentity(), m.GetWriter().GetTier(), m.GetChangeCount())
	case *qmv1.LogEntry_SessionTransit:
		s := x.SessionTransit
		r.Type = "transit"
		r.What = fmt.Sprintf("session %s %s %s (%s)", s.GetSessionId(), strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "TRANSIT_KIND_")), s.GetPeerSpiffeId(), s.GetSessionType())
	case *qmv1.LogEntry_ForensicSnapshot:
		r.Type = "forensic"
		r.What = "posture forensic snapshot"
	case *qmv1.LogEntry_PostureTransition:
		p := x.PostureTransition
		r.Type = "transition"
		r.What = fmt.Sprintf("%d → %d %s, %d steps", p.GetFromLevel(), p.GetToLevel(), p.GetResult(), len(p.GetSteps()))
	}
	return r
}

// verifyResult is what notary verify prints.
type verifyResult struct {
	Entries    uint64 `json:"entries"`
	Size       int64  `json:"checkpoint-size"`
	Root       string `json:"checkpoint-root"`
	Signer     string `json:"signed-by"`
	KeyFrom    string `json:"key-from"`
	Extends    *int64 `json:"extends-size,omitempty"`
	ExtendRoot string `json:"extends-root,omitempty"`
}

func (a *app) notaryVerifyCmd() *cobra.Command {
	var keyFile, against string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check every log entry against the node's signed checkpoint, with a progress bar",
		Long: `verify fetches the notary's latest signed checkpoint and checks its signature, then fetches
every entry with its inclusion proof and checks that the entry is in the signed tree (an
entry fetched against a newer checkpoint is also checked to extend the first one). With
--checkpoint it also proves that the log extends a checkpoint you kept (the last one
Quartermaster acknowledged, say): a rolled-back or rewritten log fails.

Give --key, the notary's verifier key kept somewhere you trust: without it the key the node
reports is used, which proves the log consistent but not whose it is.`,
		Example: `  kedgectl notary verify --key notary-key.pub
  kedgectl notary verify --key notary-key.pub --checkpoint last-acked.note -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v note.Verifier
			keyFrom := "the node (unverified origin)"
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("read verifier key: %w", err)
				}
				if v, err = note.NewVerifier(strings.TrimSpace(string(b))); err != nil {
					return fmt.Errorf("read verifier key %s: %w", keyFile, err)
				}
				keyFrom = keyFile
			}
			var old []byte
			if against != "" {
				var err error
				if old, err = os.ReadFile(against); err != nil {
					return fmt.Errorf("read checkpoint: %w", err)
				}
			}
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := a.notaryVerify(cmd.Context(), notaryv1.NewNotaryServiceClient(n.cc), v, old)
			if err != nil {
				return err
			}
			res.KeyFrom = keyFrom
			return a.emit(res, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "notary log: ok, %d entries in the checkpoint of size %d, root %s, signed by %s (key from %s)\n",
					res.Entries, res.Size, res.Root, res.Signer, res.KeyFrom)
				if res.Extends != nil {
					fmt.Fprintf(w, "extends the given checkpoint: size %d, root %s\n", *res.Extends, res.ExtendRoot)
				}
			})
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the notary's verifier key (<data-dir>/notary/key.pub, kept where you trust it)")
	c.Flags().StringVar(&against, "checkpoint", "", "a signed checkpoint note the log must extend")
	return c
}

func (a *app) notaryVerify(ctx context.Context, cl notaryv1.NotaryServiceClient, v note.Verifier, old []byte) (verifyResult, error) {
	rctx, cancel := a.ctx(ctx)
	cpResp, err := cl.GetCheckpoint(rctx, &notaryv1.GetCheckpointRequest{})
	cancel()
	if err != nil {
		return verifyResult{}, fmt.Errorf("get the notary's checkpoint: %w", err)
	}
	if v == nil {
		if v, err = note.NewVerifier(cpResp.GetVerifierKey()); err != nil {
			return verifyResult{}, fmt.Errorf("the node's verifier key: %w", err)
		}
	}
	cp, err := ledger.ParseCheckpoint(cpResp.GetNote(), v)
	if err != nil {
		return verifyResult{}, fmt.Errorf("verify the checkpoint: %w", err)
	}
	res := verifyResult{Size: cp.Size, Root: cp.Hash.String(), Signer: v.Name()}
	// extends[n] records that the checkpoint of size n, seen with an
	// entry, was proven to extend cp.
	extends := map[int64]tlog.Hash{cp.Size: cp.Hash}
	bar := newProgress(a.stderr, "entries verified", int(cp.Size), a.now)
	for i := int64(0); i < cp.Size; i++ {
		rctx, cancel := a.ctx(ctx)
		resp, err := cl.GetArtifact(rctx, &notaryv1.GetArtifactRequest{Index: uint64(i)})
		cancel()
		if err != nil {
			bar.finish(int(i))
			return res, fmt.Errorf("get entry %d: %w", i, err)
		}
		ecp, err := ledger.ParseCheckpoint(resp.GetCheckpointNote(), v)
		if err != nil {
			bar.finish(int(i))
			return res, fmt.Errorf("entry %d: its checkpoint: %w", i, err)
		}
		if h, ok := extends[ecp.Size]; !ok {
			if err := a.checkExtends(ctx, cl, cp, ecp); err != nil {
				bar.finish(int(i))
				return res, fmt.Errorf("entry %d: %w", i, err)
			}
			extends[ecp.Size] = ecp.Hash
		} else if h != ecp.Hash {
			bar.finish(int(i))
			return res, fmt.Errorf("entry %d: two checkpoints of size %d with different roots (%s, %s)", i, ecp.Size, h, ecp.Hash)
		}
		proof, err := hashes(resp.GetInclusionProof())
		if err != nil {
			bar.finish(int(i))
			return res, fmt.Errorf("entry %d: %w", i, err)
		}
		if err := tlog.CheckRecord(proof, ecp.Size, ecp.Hash, i, tlog.RecordHash(resp.GetRawEntry())); err != nil {
			bar.finish(int(i))
			return res, fmt.Errorf("entry %d is NOT in the signed checkpoint of size %d: %w", i, ecp.Size, err)
		}
		res.Entries++
		bar.set(int(i + 1))
	}
	bar.finish(int(cp.Size))
	if old != nil {
		oc, err := ledger.ParseCheckpoint(old, v)
		if err != nil {
			return res, fmt.Errorf("verify the given checkpoint: %w", err)
		}
		if err := a.checkExtends(ctx, cl, oc, cp); err != nil {
			return res, fmt.Errorf("the log does not extend the given checkpoint: %w", err)
		}
		res.Extends, res.ExtendRoot = &oc.Size, oc.Hash.String()
	}
	return res, nil
}

// checkExtends proves that checkpoint newer extends older.
func (a *app) checkExtends(ctx context.Context, cl notaryv1.NotaryServiceClient, older, newer ledger.Checkpoint) error {
	if newer.Size < older.Size {
		return fmt.Errorf("checkpoint of size %d is older than %d: the log shrank", newer.Size, older.Size)
	}
	if newer.Size == older.Size {
		if newer.Hash != older.Hash {
			return fmt.Errorf("two checkpoints of size %d with different roots (%s, %s)", older.Size, older.Hash, newer.Hash)
		}
		return nil
	}
	rctx, cancel := a.ctx(ctx)
	defer cancel()
	resp, err := cl.GetConsistencyProof(rctx, &notaryv1.GetConsistencyProofRequest{OldSize: uint64(older.Size), NewSize: uint64(newer.Size)})
	if err != nil {
		return fmt.Errorf("get a consistency proof %d → %d: %w", older.Size, newer.Size, err)
	}
	p, err := hashes(resp.GetProof())
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(tlog.TreeProof(p), newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("checkpoint of size %d does not extend the one of size %d: %w", newer.Size, older.Size, err)
	}
	return nil
}

func hashes(bs [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("proof hash %d has %d bytes, want %d", i, len(b), tlog.HashSize)
		}
		copy(out[i][:], b)
	}
	return out, nil
}
