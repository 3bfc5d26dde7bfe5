package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/mirror"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/yang"
)

// node is a connection to one node.
type node struct {
	c      gpb.GNMIClient
	cc     *grpc.ClientConn
	schema *tree.Schema
}

// open connects to the node named by the global flags.
func (a *app) open() (*node, error) {
	schema, err := yang.Schema()
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	c, cc, err := a.conn.dial(a.stdin, a.stderr)
	if err != nil {
		return nil, err
	}
	return &node{c: c, cc: cc, schema: schema}, nil
}

func (n *node) Close() error { return n.cc.Close() }

// sectionPath is the subtree each summary section reads.
func sectionPath(s summary.Section) *gpb.Path {
	k := kedgepath.Root().Kedge()
	switch s {
	case summary.SectionSystem:
		return k.System().Path()
	case summary.SectionPosture:
		return k.Posture().Path()
	case summary.SectionRoutes:
		return k.Routes().Path()
	case summary.SectionMesh:
		return k.Mesh().Path()
	case summary.SectionSessions:
		return k.Sessions().Path()
	case summary.SectionNotary:
		return k.Notary().Path()
	case summary.SectionUnderlay:
		return k.Underlay().Path()
	}
	return k.Path()
}

// summarize reads the sections' subtrees into client-side trees and
// summarizes them. The trees come back by section, for verbs that read
// more than the summary holds (withheld routes and their reasons).
func (n *node) summarize(ctx context.Context, sections ...summary.Section) (*summary.Node, map[summary.Section]*tree.Tree, error) {
	out := summary.Of(tree.New(n.schema)) // every section empty, not nil
	trees := map[summary.Section]*tree.Tree{}
	for _, s := range sections {
		t, err := mirror.Get(ctx, n.c, n.schema, sectionPath(s))
		if err != nil {
			return nil, nil, err
		}
		summary.Fill(out, t, s)
		trees[s] = t
	}
	return out, trees, nil
}

// emit writes v as JSON or YAML, or calls table for the default format.
func (a *app) emit(v any, table func(w *tabwriter.Writer)) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Through JSON, so YAML has the same names and values.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
		enc := yaml.NewEncoder(a.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(x); err != nil {
			return err
		}
		return enc.Close()
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	table(w)
	return w.Flush()
}

// dur formats a duration for people: three significant digits.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + " ns"
	case d < time.Millisecond:
		return sig(float64(d)/1e3) + " µs"
	case d < time.Second:
		return sig(float64(d)/1e6) + " ms"
	}
	return sig(d.Seconds()) + " s"
}

func sig(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// ago says how long before now t was ("never" for zero).
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		d = 0
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	case d >= time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	case d >= time.Minute:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	}
	return strconv.Itoa(int(d.Seconds())) + "s ago"
}

// bytesIEC formats a byte count.
func bytesIEC(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, units := float64(n), []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i]
}

// levelName is a posture level's name (the seed's five).
func levelName(l uint8) string {
	switch l {
	case 5:
		return "normal"
	case 4:
		return "elevated"
	case 3:
		return "strict"
	case 2:
		return "restricted"
	case 1:
		return "lockdown"
	}
	return "unknown"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// read connects to the node, summarizes the given sections and
// disconnects: what every read-only verb starts with.
func (a *app) read(cmd *cobra.Command, sections ...summary.Section) (*summary.Node, map[summary.Section]*tree.Tree, error) {
	ctx, cancel := a.ctx(cmd.Context())
	defer cancel()
	n, err := a.open()
	if err != nil {
		return nil, nil, err
	}
	defer n.Close()
	return n.summarize(ctx, sections...)
}
