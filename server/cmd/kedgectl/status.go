package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/guildhouse-co/kedge/models/summary"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "The node at a glance: identity, posture and the last transition's steps, backends, mesh, routes, sessions",
		Long: `status shows the node's identity, its posture level and effective level (and which source
set it), the cluster's level where a cluster engine sets one (and whether the node reaches the
cluster's API), the last transition with each step's timing, the dataplane backends and why each
runs or not, and one line each for the mesh, the routes and the sessions.`,
		Example: `  kedgectl status
  kedgectl status -o json | jq .posture`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.read(cmd, summary.Sections()...)
			if err != nil {
				return err
			}
			return a.emit(s, func(w *tabwriter.Writer) { a.statusTable(w, s) })
		},
	}
}

func (a *app) statusTable(w *tabwriter.Writer, s *summary.Node) {
	now := a.now()
	sys := s.System
	var id []string
	for _, kv := range [][2]string{{"cluster", sys.Cluster}, {"role", sys.Role}, {"version", sys.Version}} {
		if kv[1] != "" {
			id = append(id, kv[0]+" "+kv[1])
		}
	}
	if !sys.BootTime.IsZero() {
		id = append(id, "started "+ago(sys.BootTime, now))
	}
	fmt.Fprintf(w, "node\t%s\t%s\n", orDash(sys.Node), strings.Join(id, ", "))
	p := s.Posture
	fmt.Fprintf(w, "posture\tlevel %d (%s), effective %d (%s)\tsource %s, %s\n",
		p.Level, levelName(p.Level), p.Effective, levelName(p.Effective), orDash(p.Source), plural(int(p.Sequence), "transition"))
	if c := p.Cluster; c != nil {
		fmt.Fprintf(w, "cluster posture\t%s\t%s\n", clusterLevel(c), clusterLink(c, now))
	}
	if t := p.Last; t != nil {
		fmt.Fprintf(w, "last transition\t%d → %d %s in %s\t%s\n", t.From, t.To, t.Result, dur(t.Duration), ago(t.Started, now))
		for _, st := range t.Steps {
			errText := ""
			if st.Error != "" {
				errText = ": " + st.Error
			}
			fmt.Fprintf(w, "  %d. %s\t%s\t%s%s\n", st.Index+1, st.Name, dur(st.Duration), st.Result, errText)
		}
	}
	fmt.Fprintln(w, "backends\t\t")
	for _, b := range s.Backends {
		state := "off"
		if b.Active {
			state = "active"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", b.Name, state, b.Reason)
	}
	m := s.Mesh
	up := 0
	for _, pr := range m.Peers {
		if pr.Status == "up" {
			up++
		}
	}
	device := "no device"
	if m.Interface != "" || m.Status != "" {
		device = strings.TrimSpace(m.Interface + " " + m.Status)
	}
	fmt.Fprintf(w, "mesh\t%s\t%s, %d up\n", device, plural(len(m.Peers), "peer"), up)
	fmt.Fprintf(w, "routes\t%d\t%s\n", s.Routes.Total, routeStatusLine(s.Routes))
	active := 0
	for _, ss := range s.Sessions {
		if ss.Status == "active" {
			active++
		}
	}
	fmt.Fprintf(w, "sessions\t%d active\t%d listed\n", active, len(s.Sessions))
	nt := s.Notary
	upstream := "no upstream"
	if nt.UpstreamState != "" && nt.UpstreamState != "disabled" {
		upstream = fmt.Sprintf("upstream %s, %d acknowledged", nt.UpstreamState, nt.LastAckSize)
	}
	fmt.Fprintf(w, "notary\t%s, %d%% of transits, %s flush\t%s\n", plural(int(nt.Records), "record"), nt.SamplingPercent, orDash(nt.FlushMode), upstream)
	u := s.Underlay
	drift, pending := 0, 0
	for _, d := range u.Devices {
		if d.Drift {
			drift++
		}
	}
	for _, m := range u.Mutations {
		if m.Status == "proposed" || m.Status == "approved" || m.Status == "executing" {
			pending++
		}
	}
	fmt.Fprintf(w, "underlay\t%s, %d drifted\t%s, %d not done\n", plural(len(u.Devices), "device"), drift, plural(len(u.Mutations), "proposal"), pending)
}

// plural is "1 peer" or "2 peers".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// routeStatusLine sums the routes by status over all classes.
func routeStatusLine(r summary.Routes) string {
	var parts []string
	for _, st := range summary.RouteStatuses {
		n := 0
		for _, c := range r.ByClass {
			n += c.Status[st]
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (a *app) sessionsCmd() *cobra.Command {
	var active bool
	c := &cobra.Command{
		Use:   "sessions",
		Short: "Shellstream sessions: peer, type, tier, governing level, status, traffic",
		Long: `sessions lists the Shellstream sessions in /kedge/sessions: who is at the other end (the
SPIFFE ID its SAT and SVID proved), the session type and tier, the level governing it (the
stricter of the two nodes'), whether it is active, draining or closed, and its traffic.`,
		Example: `  kedgectl sessions
  kedgectl sessions --active -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.read(cmd, summary.SectionSessions)
			if err != nil {
				return err
			}
			list := s.Sessions
			if active {
				list = nil
				for _, x := range s.Sessions {
					if x.Status != "closed" {
						list = append(list, x)
					}
				}
			}
			if list == nil {
				list = []summary.Session{}
			}
			now := a.now()
			return a.emit(list, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tPEER\tNODE\tTYPE\tTIER\tLEVEL\tSTATUS\tSTARTED\tIN\tOUT")
				for _, x := range list {
					peer := x.Peer
					if x.Local {
						peer += " (local)"
					}
					status := x.Status
					if x.CloseReason != "" {
						status += ": " + x.CloseReason
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", x.ID, peer, orDash(x.Node), x.Type, orDash(x.Tier),
						x.Effective, status, ago(x.Started, now), bytesIEC(x.BytesIn), bytesIEC(x.BytesOut))
				}
			})
		},
	}
	c.Flags().BoolVar(&active, "active", false, "only sessions that are not closed")
	return c
}

func (a *app) meshCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mesh",
		Short: "The WireGuard mesh: the device and each peer's status, last handshake and traffic",
		Long: `mesh shows this node's overlay device (interface, status, public key) and every peer:
its status (pending, up, stale, drained, posture-down, failed; unreported before the mesh
wrote any), how long ago its last handshake was, and the bytes received and sent.`,
		Example: `  kedgectl mesh
  kedgectl mesh -o json | jq '.peers[] | select(.status != "up")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.read(cmd, summary.SectionMesh)
			if err != nil {
				return err
			}
			m, now := s.Mesh, a.now()
			return a.emit(m, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "interface %s, %s, public key %s\n", orDash(m.Interface), orDash(m.Status), orDash(m.PublicKey))
				if m.Error != "" {
					fmt.Fprintf(w, "error: %s\n", m.Error)
				}
				fmt.Fprintln(w, "PEER\tSTATUS\tENDPOINT\tHANDSHAKE\tRX\tTX\tCRITICAL\tCLUSTER")
				for _, p := range m.Peers {
					status := p.Status
					if p.Error != "" {
						status += ": " + p.Error
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", p.Name, status, orDash(p.Endpoint),
						ago(p.LastHandshake, now), bytesIEC(p.RxBytes), bytesIEC(p.TxBytes), p.Critical, orDash(p.Cluster))
				}
			})
		},
	}
}

// clusterLevel says which level the cluster sets, and from which object.
func clusterLevel(c *summary.ClusterPosture) string {
	l := "no level"
	if c.Level != 0 {
		l = fmt.Sprintf("level %d (%s)", c.Level, levelName(c.Level))
	}
	if c.Object != "" {
		l += " from " + c.Object
	}
	return l
}

// clusterLink says whether the node reaches the cluster's API.
func clusterLink(c *summary.ClusterPosture, now time.Time) string {
	s := "API unreachable"
	if c.Connected {
		s = "API connected"
	}
	return s + ", last heard " + ago(c.LastSync, now)
}
