package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/summary"
)

// routeEntry is one route that is not installed, and why.
type routeEntry struct {
	Prefix string `json:"prefix"`
	Table  uint32 `json:"table"`
	Class  string `json:"class"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// routesView is what kedgectl routes prints.
type routesView struct {
	summary.Routes
	Withheld []routeEntry `json:"withheld"`
	Failed   []routeEntry `json:"failed"`
}

func (a *app) routesCmd() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "routes",
		Short: "Route counts by class and state, and each withheld or failed route with its reason",
		Long: `routes counts the routes of /kedge/routes by class (management, incident, monitoring,
overlay, underlay, pod) and state (installed, pending, withheld by the posture level,
failed; unreported when no route backend has written a state), then lists the routes that
are withheld or failed with the reason the node gives.`,
		Example: `  kedgectl routes
  kedgectl routes --limit 0 -o json | jq '.withheld[].reason'
  kedgectl routes import routes.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, trees, err := a.read(cmd, summary.SectionRoutes)
			if err != nil {
				return err
			}
			v := routesView{Routes: s.Routes, Withheld: []routeEntry{}, Failed: []routeEntry{}}
			for r := range kedgetree.Of(trees[summary.SectionRoutes]).Kedge().Routes().Route().All() {
				st := summary.RouteStatus(r)
				if st != string(kedgepath.RouteStatusWithheld) && st != string(kedgepath.RouteStatusFailed) {
					continue
				}
				e := routeEntry{Class: summary.RouteClass(r), Status: st}
				e.Prefix, _ = r.Prefix()
				e.Table, _ = r.Table()
				e.Reason, _ = r.State().Reason()
				if st == string(kedgepath.RouteStatusWithheld) {
					v.Withheld = append(v.Withheld, e)
				} else {
					v.Failed = append(v.Failed, e)
				}
			}
			for _, l := range []*[]routeEntry{&v.Withheld, &v.Failed} {
				slices.SortFunc(*l, func(a, b routeEntry) int {
					return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Table, b.Table), comparePrefix(a.Prefix, b.Prefix))
				})
			}
			return a.emit(v, func(w *tabwriter.Writer) { routesTable(w, v, limit) })
		},
	}
	c.Flags().IntVar(&limit, "limit", 50, "list at most this many withheld or failed routes in the table (0: all)")
	c.AddCommand(a.routesImportCmd())
	return c
}

func comparePrefix(a, b string) int {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea != nil || eb != nil {
		return cmp.Compare(a, b)
	}
	return cmp.Or(pa.Addr().Compare(pb.Addr()), cmp.Compare(pa.Bits(), pb.Bits()))
}

func routesTable(w *tabwriter.Writer, v routesView, limit int) {
	head := []string{"CLASS"}
	for _, s := range summary.RouteStatuses {
		head = append(head, strings.ToUpper(s))
	}
	fmt.Fprintln(w, strings.Join(append(head, "TOTAL"), "\t"))
	for _, c := range v.ByClass {
		row := []string{c.Class}
		for _, s := range summary.RouteStatuses {
			row = append(row, fmt.Sprint(c.Status[s]))
		}
		fmt.Fprintln(w, strings.Join(append(row, fmt.Sprint(c.Total)), "\t"))
	}
	fmt.Fprintf(w, "total\t\t\t\t\t\t%d\n", v.Total)
	list := append(append([]routeEntry(nil), v.Withheld...), v.Failed...)
	if len(list) == 0 {
		return
	}
	// A blank line ends the table's columns: the list has its own.
	w.Flush()
	fmt.Fprintf(w, "\nwithheld or failed: %d\n", len(list))
	fmt.Fprintln(w, "PREFIX\tTABLE\tCLASS\tSTATUS\tREASON")
	for i, e := range list {
		if limit > 0 && i == limit {
			fmt.Fprintf(w, "... and %d more (--limit 0 lists all)\n", len(list)-limit)
			break
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", e.Prefix, e.Table, e.Class, e.Status, e.Reason)
	}
}

// importRoute is one route of an import file: the leaves of a route's
// config, named as in the tree.
type importRoute struct {
	Prefix  string  `yaml:"prefix"`
	Table   *uint32 `yaml:"table"`
	NextHop string  `yaml:"next-hop"`
	Device  string  `yaml:"device"`
	Metric  *uint32 `yaml:"metric"`
	Class   string  `yaml:"class"`
	Owner   string  `yaml:"owner"`
	Tier    string  `yaml:"tier"`
	line    int
}

// importFields are the members a route may have.
var importFields = map[string]bool{"prefix": true, "table": true, "next-hop": true, "device": true, "metric": true,
	"class": true, "owner": true, "tier": true}

const importFieldList = "prefix, table, next-hop, device, metric, class, owner, tier"

// mainTable is the kernel's main routing table, the table of a route
// whose entry names none.
const mainTable = 254

func (a *app) routesImportCmd() *cobra.Command {
	var batch int
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Load routes in bulk from a YAML or JSON file (- for stdin), with a progress bar",
		Long: `import writes the routes of FILE into /kedge/routes. FILE is YAML or JSON: a list of
routes, or an object whose "routes" member is one; each route has the leaves of a route's
config, named as in the tree: prefix (required), table (default 254, the main table),
next-hop, device, metric, class, owner, tier.

The whole file is checked first, against the same schema the node validates with: a bad
entry is reported with its line and nothing is written. The routes then go in Sets of
--batch routes, each one commit, with a progress bar on stderr. If the node refuses a
batch (a tier rule, say), the batches before it stay written, the error names the batch's
first route, and running the same import again is safe: it rewrites what is there.`,
		Example: `  kedgectl routes import routes.yaml
  kedgectl routes import --batch 5000 big.json
  generate-routes | kedgectl routes import -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return fmt.Errorf("%w: --batch %d: want at least 1", errUsage, batch)
			}
			var src []byte
			var err error
			if args[0] == "-" {
				src, err = io.ReadAll(a.stdin)
			} else {
				src, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read routes: %w", err)
			}
			routes, err := parseImport(src)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			updates, err := importUpdates(n.schema, routes)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return a.importRoutes(cmd.Context(), n, routes, updates, batch)
		},
	}
	c.Flags().IntVar(&batch, "batch", 1000, "routes per Set (one commit each)")
	return c
}

// parseImport reads an import file: a list of routes, or {routes: [...]}.
// Unknown members are refused, with their line.
func parseImport(src []byte) ([]importRoute, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("no routes")
	}
	list := doc.Content[0]
	if list.Kind == yaml.MappingNode {
		var found *yaml.Node
		for i := 0; i+1 < len(list.Content); i += 2 {
			if list.Content[i].Value == "routes" {
				found = list.Content[i+1]
			} else {
				return nil, fmt.Errorf("line %d: unknown member %q (want routes)", list.Content[i].Line, list.Content[i].Value)
			}
		}
		if found == nil {
			return nil, errors.New("no routes member")
		}
		list = found
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of routes", list.Line)
	}
	out := make([]importRoute, 0, len(list.Content))
	for _, item := range list.Content {
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("line %d: want a route (prefix: ..., device: ...)", item.Line)
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			if k := item.Content[i]; !importFields[k.Value] {
				return nil, fmt.Errorf("line %d: unknown member %q of a route (known: %s)", k.Line, k.Value, importFieldList)
			}
		}
		var r importRoute
		if err := item.Decode(&r); err != nil {
			return nil, fmt.Errorf("route at line %d: %v", item.Line, strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
		}
		r.line = item.Line
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no routes")
	}
	return out, nil
}

// importUpdates turns the routes into gNMI updates of typed paths and
// values, one list per route, after checking every route against the
// schema in a client-side tree: the node's own validation, before
// anything is sent.
func importUpdates(schema *tree.Schema, routes []importRoute) ([][]*gpb.Update, error) {
	t := tree.New(schema)
	tx, err := t.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	seen := map[string]int{}
	out := make([][]*gpb.Update, len(routes))
	for i, r := range routes {
		if r.Prefix == "" {
			return nil, fmt.Errorf("route at line %d: no prefix", r.line)
		}
		table := uint32(mainTable)
		if r.Table != nil {
			table = *r.Table
		}
		key := fmt.Sprintf("%s table %d", r.Prefix, table)
		if l, dup := seen[key]; dup {
			return nil, fmt.Errorf("route at line %d: %s is also at line %d", r.line, key, l)
		}
		seen[key] = r.line
		c := kedgepath.Root().Kedge().Routes().Route(r.Prefix, table).Config()
		ups := []*gpb.Update{
			{Path: c.Prefix().Path(), Val: c.Prefix().Val(r.Prefix)},
			{Path: c.Table().Path(), Val: c.Table().Val(table)},
		}
		add := func(p *gpb.Path, v *gpb.TypedValue) { ups = append(ups, &gpb.Update{Path: p, Val: v}) }
		if r.NextHop != "" {
			add(c.NextHop().Path(), c.NextHop().Val(r.NextHop))
		}
		if r.Device != "" {
			add(c.Device().Path(), c.Device().Val(r.Device))
		}
		if r.Metric != nil {
			add(c.Metric().Path(), c.Metric().Val(*r.Metric))
		}
		if r.Class != "" {
			add(c.Class().Path(), c.Class().Val(kedgepath.RouteClass(r.Class)))
		}
		if r.Owner != "" {
			add(c.Owner().Path(), c.Owner().Val(r.Owner))
		}
		if r.Tier != "" {
			add(c.Tier().Path(), c.Tier().Val(kedgepath.Tier(r.Tier)))
		}
		for _, u := range ups {
			if err := tx.Update(u.GetPath().GetElem(), u.GetVal()); err != nil {
				return nil, fmt.Errorf("route at line %d (%s): %w", r.line, key, err)
			}
		}
		out[i] = ups
	}
	if err := tx.Validate(); err != nil {
		return nil, fmt.Errorf("check routes: %w", err)
	}
	return out, nil
}

// importResult is what routes import prints.
type importResult struct {
	Routes  int `json:"routes"`
	Batches int `json:"batches"`
}

func (a *app) importRoutes(ctx context.Context, n *node, routes []importRoute, updates [][]*gpb.Update, batch int) error {
	bar := newProgress(a.stderr, "routes", len(routes), a.now)
	bar.set(0)
	done, batches := 0, 0
	for done < len(routes) {
		end := min(done+batch, len(routes))
		req := &gpb.SetRequest{}
		for _, u := range updates[done:end] {
			req.Update = append(req.Update, u...)
		}
		rctx, cancel := a.ctx(ctx)
		_, err := n.c.Set(rctx, req)
		cancel()
		if err != nil {
			bar.finish(done)
			first := routes[done]
			return fmt.Errorf("import batch %d (routes %d-%d, the first %s at line %d): %w; the %d routes before it are written",
				batches+1, done+1, end, first.Prefix, first.line, err, done)
		}
		batches++
		done = end
		bar.set(done)
	}
	bar.finish(done)
	res := importResult{Routes: done, Batches: batches}
	return a.emit(res, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "imported %d routes in %d commits\n", res.Routes, res.Batches)
	})
}
