package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/guildhouse-co/kedge/models/summary"
)

// underlayViews are the parts kedgectl underlay can show alone.
var underlayViews = []string{"devices", "proposals", "drift"}

func (a *app) underlayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "underlay [devices|proposals|drift]",
		Short: "The underlay: its devices, the proposed mutations and what became of them, drift",
		Long: `underlay shows what the node's underlay programs on physical network devices: the level and
drift-check interval it runs under and whether the compiler is frozen; each device's status,
reachability and last push; each proposed mutation (proposer, tier, devices, VLANs), its
status and reason and its result per device; and the drift found on each device, path by
path. Name one part to see only it.`,
		Example: `  kedgectl underlay
  kedgectl underlay proposals
  kedgectl underlay drift -o json`,
		Args:              cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs:         underlayViews,
		ValidArgsFunction: fixedCompletions(underlayViews...),
		RunE: func(cmd *cobra.Command, args []string) error {
			view := ""
			if len(args) == 1 {
				view = args[0]
			}
			s, _, err := a.read(cmd, summary.SectionUnderlay)
			if err != nil {
				return err
			}
			u := s.Underlay
			var v any = u
			switch view {
			case "devices":
				v = u.Devices
			case "proposals":
				v = u.Mutations
			case "drift":
				v = drifted(u.Devices)
			}
			return a.emit(v, func(w *tabwriter.Writer) { a.underlayTable(w, u, view) })
		},
	}
}

// drifted are the devices with drift.
func drifted(ds []summary.Device) []summary.Device {
	out := []summary.Device{}
	for _, d := range ds {
		if d.Drift {
			out = append(out, d)
		}
	}
	return out
}

func (a *app) underlayTable(w *tabwriter.Writer, u summary.Underlay, view string) {
	now := a.now()
	if view == "" {
		frozen := ""
		if u.CompilerFrozen {
			frozen = ", compiler frozen"
		}
		fmt.Fprintf(w, "underlay at level %d%s, drift checked every %d ms (last %s), %d waiting\n",
			u.Level, frozen, u.DriftIntervalMS, ago(u.LastDriftCheck, now), u.Waiting)
	}
	if view == "" || view == "devices" {
		fmt.Fprintln(w, "DEVICE\tADDRESS\tVENDOR\tROLE\tSTATUS\tREACHABLE\tWATCH\tLAST PUSH\tDRIFT\tERROR")
		for _, d := range u.Devices {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%t\t%s\n", d.Name, orDash(d.Address), orDash(d.Vendor), orDash(d.Role),
				d.Status, d.Reachable, orDash(d.Watch), ago(d.LastPush, now), d.Drift, orDash(d.LastError))
		}
	}
	if view == "" || view == "proposals" {
		if view == "" {
			w.Flush()
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "PROPOSAL\tPROPOSER\tTIER\tDEVICES\tVLANS\tSTATUS\tREASON\tRESULTS")
		for _, m := range u.Mutations {
			vl := make([]string, len(m.VLANs))
			for i, v := range m.VLANs {
				vl[i] = fmt.Sprint(v)
			}
			var res []string
			for _, r := range m.Results {
				x := r.Device + " " + r.Status
				if r.Error != "" {
					x += " (" + r.Error + ")"
				}
				res = append(res, x)
			}
			status := m.Status
			if m.Emergency {
				status += " (emergency)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.Proposer), orDash(m.Tier), orDash(strings.Join(m.Devices, ",")),
				orDash(strings.Join(vl, ",")), status, orDash(m.Reason), orDash(strings.Join(res, "; ")))
		}
	}
	if view == "" || view == "drift" {
		if view == "" {
			w.Flush()
			fmt.Fprintln(w)
		}
		ds := drifted(u.Devices)
		if len(ds) == 0 {
			fmt.Fprintln(w, "no drift")
			return
		}
		fmt.Fprintln(w, "DEVICE\tSINCE\tPATH")
		for _, d := range ds {
			paths := d.DriftPaths
			if len(paths) == 0 {
				paths = []string{"-"}
			}
			for i, p := range paths {
				name, since := d.Name, ago(d.DriftSince, now)
				if i > 0 {
					name, since = "", ""
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", name, since, p)
			}
		}
	}
}
