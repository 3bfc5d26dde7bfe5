package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/mirror"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/summary"
)

func (a *app) postureCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "posture",
		Short: "Read, change (with commit-confirmed) or watch the posture level",
		Long: `posture reads the node's posture level (5 normal .. 1 lockdown), sets the intended level,
optionally as a commit-confirmed that rolls back unless confirmed, and watches transitions.`,
		Example: `  kedgectl posture get
  kedgectl posture set 3
  kedgectl posture set 1 --confirm-within 5m
  kedgectl posture watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(a.postureGetCmd(), a.postureSetCmd(), a.postureResolveCmd("confirm"), a.postureResolveCmd("cancel"), a.postureWatchCmd())
	return c
}

func (a *app) postureGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "The intended and effective level, its source, and the last transition's steps",
		Example: `  kedgectl posture get
  kedgectl posture get -o json | jq '.["effective-level"]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.read(cmd, summary.SectionPosture)
			if err != nil {
				return err
			}
			return a.emit(s.Posture, func(w *tabwriter.Writer) { a.postureTable(w, s.Posture) })
		},
	}
}

func (a *app) postureTable(w *tabwriter.Writer, p summary.Posture) {
	now := a.now()
	fmt.Fprintf(w, "level\t%d\t%s\n", p.Level, levelName(p.Level))
	fmt.Fprintf(w, "effective level\t%d\t%s\n", p.Effective, levelName(p.Effective))
	fmt.Fprintf(w, "source\t%s\t\n", orDash(p.Source))
	if c := p.Cluster; c != nil {
		fmt.Fprintf(w, "cluster\t%s\t%s\n", clusterLevel(c), clusterLink(c, now))
	}
	fmt.Fprintf(w, "transitions\t%d\t\n", p.Sequence)
	if t := p.Last; t != nil {
		fmt.Fprintf(w, "last transition\t%d → %d %s in %s\t%s\n", t.From, t.To, t.Result, dur(t.Duration), ago(t.Started, now))
		for _, st := range t.Steps {
			e := ""
			if st.Error != "" {
				e = ": " + st.Error
			}
			fmt.Fprintf(w, "  %d. %s\t%s\t%s%s\n", st.Index+1, st.Name, dur(st.Duration), st.Result, e)
		}
	}
	if len(p.History) > 0 {
		fmt.Fprintln(w, "history\t\t")
		for _, t := range p.History {
			fmt.Fprintf(w, "  #%d\t%d → %d %s in %s\t%s\n", t.Sequence, t.From, t.To, t.Result, dur(t.Duration), ago(t.Started, now))
		}
	}
}

// parseLevel reads a posture level argument.
func parseLevel(s string) (uint8, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n < 1 || n > 5 {
		return 0, fmt.Errorf("%w: level %q: want 1..5 (5 normal .. 1 lockdown)", errUsage, s)
	}
	return uint8(n), nil
}

func (a *app) postureSetCmd() *cobra.Command {
	var within time.Duration
	var noWait bool
	c := &cobra.Command{
		Use:   "set LEVEL",
		Short: "Set the intended level (1..5), optionally as a commit-confirmed with a countdown",
		Long: `set writes /kedge/posture/config/level and waits until the posture engine has run the
transition, then prints its steps.

With --confirm-within DURATION the write is a gNMI commit-confirmed: the node rolls it back
by itself when DURATION passes unconfirmed (a lost connection cannot strand a node in
lockdown). kedgectl shows a countdown and reads your answer from stdin: "confirm" keeps the
level, "cancel" rolls it back now; at end of input (ctrl-D) it leaves the commit pending and
prints the commands that confirm or cancel it later. While it is pending every other Set
on the node is refused.`,
		Example: `  kedgectl posture set 4
  kedgectl posture set 1 --confirm-within 2m
  echo confirm | kedgectl posture set 2 --confirm-within 30s
  kedgectl posture set 3 --confirm-within 10m --no-wait   # prints the commit id`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: fixedCompletions("1", "2", "3", "4", "5"),
		RunE: func(cmd *cobra.Command, args []string) error {
			level, err := parseLevel(args[0])
			if err != nil {
				return err
			}
			if within < 0 {
				return fmt.Errorf("%w: --confirm-within %s must be positive", errUsage, within)
			}
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			return a.postureSet(cmd.Context(), n, level, within, noWait)
		},
	}
	c.Flags().DurationVar(&within, "confirm-within", 0, "make it a commit-confirmed that rolls back unless confirmed within this long (the node allows up to 1h)")
	c.Flags().BoolVar(&noWait, "no-wait", false, "print the result (or the pending commit's id) without waiting for the transition or an answer")
	return c
}

func levelUpdate(level uint8) *gpb.Update {
	p := kedgepath.Root().Kedge().Posture().Config().Level()
	return &gpb.Update{Path: p.Path(), Val: p.Val(level)}
}

func (a *app) postureSet(parent context.Context, n *node, level uint8, within time.Duration, noWait bool) error {
	req := &gpb.SetRequest{Update: []*gpb.Update{levelUpdate(level)}}
	id := ""
	if within > 0 {
		id = newCommitID()
		req.Extension = []*gnmi_ext.Extension{commitExt(id, &gnmi_ext.Commit_Commit{
			Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(within)}})}
	}
	ctx, cancel := a.ctx(parent)
	_, err := n.c.Set(ctx, req)
	cancel()
	if err != nil {
		return fmt.Errorf("set posture level %d: %w", level, err)
	}
	if id == "" {
		fmt.Fprintf(a.stderr, "posture level set to %d\n", level)
		if noWait {
			return nil
		}
		return a.waitTransition(parent, n, level)
	}
	deadline := a.now().Add(within)
	fmt.Fprintf(a.stderr, "commit %s: level %d, rolls back at %s unless confirmed\n", id, level, deadline.Format(time.TimeOnly))
	if noWait {
		fmt.Fprintln(a.stdout, id)
		return nil
	}
	// The answer is asked for once the level is in force, so that what
	// is confirmed has been seen working.
	p, err := a.untilPosture(parent, n, applied(level), fmt.Sprintf("level %d applied", level))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "level %d in force: transition %d → %d %s in %s\n", level, p.Last.From, p.Last.To, p.Last.Result, dur(p.Last.Duration))
	return a.awaitAnswer(parent, n, id, level, deadline)
}

// awaitAnswer shows the countdown until stdin says confirm or cancel, the
// deadline passes (the node rolls back by itself), or stdin ends (the
// commit stays pending).
func (a *app) awaitAnswer(ctx context.Context, n *node, id string, level uint8, deadline time.Time) error {
	lines := readLines(a.stdin)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	cd := countdown{w: a.stderr, tty: isTerminal(a.stderr)}
	for {
		left := deadline.Sub(a.now())
		if left <= 0 {
			cd.done()
			fmt.Fprintf(a.stderr, "commit %s was not confirmed in time: the node rolls it back\n", id)
			return a.waitRollback(ctx, n, level)
		}
		cd.show(fmt.Sprintf("commit %s pending: level %d rolls back in %s; type confirm or cancel", id, level, left.Round(time.Second)))
		select {
		case <-ctx.Done():
			cd.done()
			fmt.Fprintf(a.stderr, "left commit %s pending; %s\n", id, laterHint(id))
			return ctx.Err()
		case <-tick.C:
		case line, ok := <-lines:
			if !ok {
				cd.done()
				fmt.Fprintf(a.stderr, "input ended: commit %s stays pending until %s; %s\n", id, deadline.Format(time.TimeOnly), laterHint(id))
				return nil
			}
			switch strings.ToLower(line) {
			case "confirm", "c", "yes", "y":
				cd.done()
				if err := a.resolve(ctx, n, id, "confirm"); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "commit %s confirmed: level %d stays\n", id, level)
				return a.waitTransition(ctx, n, level)
			case "cancel", "x", "no", "n":
				cd.done()
				if err := a.resolve(ctx, n, id, "cancel"); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "commit %s cancelled: rolled back\n", id)
				return a.waitRollback(ctx, n, level)
			case "":
			default:
				cd.done()
				fmt.Fprintf(a.stderr, "%q: type confirm or cancel\n", line)
			}
		}
	}
}

func laterHint(id string) string {
	return fmt.Sprintf("kedgectl posture confirm %s (or cancel %s)", id, id)
}

func newCommitID() string {
	var b [6]byte
	rand.Read(b[:])
	return "kedgectl-" + hex.EncodeToString(b[:])
}

func commitExt(id string, action any) *gnmi_ext.Extension {
	c := &gnmi_ext.Commit{Id: id}
	switch x := action.(type) {
	case *gnmi_ext.Commit_Commit:
		c.Action = x
	case *gnmi_ext.Commit_Confirm:
		c.Action = x
	case *gnmi_ext.Commit_Cancel:
		c.Action = x
	}
	return &gnmi_ext.Extension{Ext: &gnmi_ext.Extension_Commit{Commit: c}}
}

// resolve confirms or cancels the pending commit id.
func (a *app) resolve(parent context.Context, n *node, id, what string) error {
	var action any = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}
	if what == "cancel" {
		action = &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}}
	}
	ctx, cancel := a.ctx(parent)
	defer cancel()
	if _, err := n.c.Set(ctx, &gpb.SetRequest{Extension: []*gnmi_ext.Extension{commitExt(id, action)}}); err != nil {
		return fmt.Errorf("%s commit %s: %w", what, id, err)
	}
	return nil
}

func (a *app) postureResolveCmd(what string) *cobra.Command {
	short := map[string]string{
		"confirm": "Confirm a pending commit-confirmed: its change stays",
		"cancel":  "Cancel a pending commit-confirmed: its change is rolled back now",
	}[what]
	return &cobra.Command{
		Use:     what + " COMMIT-ID",
		Short:   short,
		Example: fmt.Sprintf("  kedgectl posture %s kedgectl-3f9a1c0e2b7d", what),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			if err := a.resolve(cmd.Context(), n, args[0], what); err != nil {
				return err
			}
			past := map[string]string{"confirm": "confirmed", "cancel": "cancelled: rolled back"}[what]
			fmt.Fprintf(a.stderr, "commit %s %s\n", args[0], past)
			return nil
		},
	}
}

// applied holds once the engine has applied level: its state shows it,
// the last transition led to the effective level and has finished.
func applied(level uint8) func(summary.Posture) bool {
	return func(p summary.Posture) bool { return p.Level == level && settled(p) }
}

// rolledBack holds once the intended level is no longer level and the
// transition away from it has finished.
func rolledBack(level uint8) func(summary.Posture) bool {
	return func(p summary.Posture) bool { return p.Level != level && settled(p) }
}

func settled(p summary.Posture) bool {
	return p.Last != nil && p.Last.To == p.Effective && p.Last.Result != string(kedgepath.TransitionResultInProgress)
}

// waitTransition waits until the engine applied level, then prints the
// posture.
func (a *app) waitTransition(parent context.Context, n *node, level uint8) error {
	return a.printWhen(parent, n, applied(level), fmt.Sprintf("level %d applied", level))
}

// waitRollback waits until the rollback away from level applied, then
// prints the posture.
func (a *app) waitRollback(parent context.Context, n *node, level uint8) error {
	return a.printWhen(parent, n, rolledBack(level), "the rollback applied")
}

func (a *app) printWhen(parent context.Context, n *node, done func(summary.Posture) bool, what string) error {
	p, err := a.untilPosture(parent, n, done, what)
	if err != nil {
		return err
	}
	return a.emit(p, func(w *tabwriter.Writer) { a.postureTable(w, p) })
}

// untilPosture follows the posture until done holds (or --timeout).
func (a *app) untilPosture(parent context.Context, n *node, done func(summary.Posture) bool, what string) (summary.Posture, error) {
	ctx, cancel := a.ctx(parent)
	defer cancel()
	var last summary.Posture
	err := a.followPosture(ctx, n, func(p summary.Posture) bool {
		last = p
		return !done(p)
	})
	if err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			return last, fmt.Errorf("wait for %s: not within --timeout %s (level %d, effective %d)", what, a.timeout, last.Level, last.Effective)
		}
		return last, err
	}
	return last, nil
}

// followPosture subscribes to /kedge/posture's state and history and calls
// fn with the posture after the initial sync and after every change,
// until fn returns false or ctx ends.
func (a *app) followPosture(ctx context.Context, n *node, fn func(summary.Posture) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := kedgepath.Root().Kedge().Posture()
	sub, err := n.c.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("subscribe to posture: %w", err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode:     gpb.SubscriptionList_STREAM,
		Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: p.State().Path(), Mode: gpb.SubscriptionMode_ON_CHANGE},
			{Path: p.History().Path(), Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}}); err != nil {
		return fmt.Errorf("subscribe to posture: %w", err)
	}
	t := tree.New(n.schema)
	synced := false
	for {
		resp, err := sub.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow posture: %w", err)
		}
		switch r := resp.GetResponse().(type) {
		case *gpb.SubscribeResponse_SyncResponse:
			synced = true
		case *gpb.SubscribeResponse_Update:
			if err := mirror.Apply(t, true, r.Update); err != nil {
				return fmt.Errorf("follow posture: %w", err)
			}
		}
		if !synced {
			continue
		}
		var ps summary.Node
		summary.Fill(&ps, t, summary.SectionPosture)
		if !fn(ps.Posture) {
			return nil
		}
	}
}

func (a *app) postureWatchCmd() *cobra.Command {
	var count int
	c := &cobra.Command{
		Use:   "watch",
		Short: "Print the level and each transition as it happens (ctrl-C ends)",
		Long: `watch subscribes to /kedge/posture/state and prints a line with the current level, then one
for every change of the level or the effective level and one for every transition that
finishes, with its steps' timings. -o json prints one JSON object per line.`,
		Example: `  kedgectl posture watch
  kedgectl posture watch --count 3 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open()
			if err != nil {
				return err
			}
			defer n.Close()
			printed := 0
			var wt watchTracker
			err = a.followPosture(cmd.Context(), n, func(p summary.Posture) bool {
				if line, ok := wt.next(p); ok {
					if err := a.watchEmit(line, p); err != nil {
						return false
					}
					printed++
				}
				return count == 0 || printed < count
			})
			if errors.Is(err, context.Canceled) {
				return nil // ctrl-C
			}
			return err
		},
	}
	c.Flags().IntVar(&count, "count", 0, "exit after this many lines (0: until ctrl-C)")
	return c
}

// watchTracker decides which readings of the posture are worth a line:
// the first; each transition once it has finished; and a change of the
// level or the effective level that no printed transition explains. The
// engine reports a transition before it writes the levels it leads to,
// and a stream may deliver both in one notification or in two, so a
// transition's line takes its target as the effective level printed,
// and the intended level is taken as it comes after it.
type watchTracker struct {
	started   bool
	lastTrans time.Time // start of the last transition printed
	eff       uint8     // effective level last printed
	level     uint8     // intended level last printed (0: take the next)
}

func (w *watchTracker) next(p summary.Posture) (string, bool) {
	finished := p.Last != nil && p.Last.Result != string(kedgepath.TransitionResultInProgress)
	switch {
	case !w.started:
		w.started = true
		w.eff, w.level = p.Effective, p.Level
		if p.Last != nil {
			w.lastTrans = p.Last.Started
		}
		return "now", true
	case finished && !p.Last.Started.Equal(w.lastTrans):
		w.lastTrans = p.Last.Started
		w.eff, w.level = p.Last.To, 0
		return "transition", true
	}
	if w.level == 0 && p.Effective == w.eff {
		w.level = p.Level
		return "", false
	}
	if p.Effective != w.eff || p.Level != w.level {
		w.eff, w.level = p.Effective, p.Level
		return "level", true
	}
	return "", false
}

// watchEvent is one line of posture watch -o json.
type watchEvent struct {
	Event      string              `json:"event"`
	Time       time.Time           `json:"time"`
	Level      uint8               `json:"level"`
	Effective  uint8               `json:"effective-level"`
	Source     string              `json:"source"`
	Transition *summary.Transition `json:"transition,omitempty"`
}

func (a *app) watchEmit(kind string, p summary.Posture) error {
	ev := watchEvent{Event: kind, Time: a.now(), Level: p.Level, Effective: p.Effective, Source: p.Source}
	if kind == "transition" {
		ev.Transition = p.Last
	}
	if a.output != "table" {
		return a.emitLine(ev)
	}
	var line string
	if t := ev.Transition; t != nil {
		line = ev.Time.Format(time.TimeOnly)
		var steps []string
		for _, s := range t.Steps {
			st := s.Name + " " + dur(s.Duration)
			if s.Result != "ok" {
				st += " " + s.Result
			}
			steps = append(steps, st)
		}
		line += fmt.Sprintf("  transition %d → %d (%s) %s in %s [%s]", t.From, t.To, levelName(t.To), t.Result, dur(t.Duration), strings.Join(steps, ", "))
	} else {
		line = fmt.Sprintf("%s  level %d, effective %d (%s, source %s)", ev.Time.Format(time.TimeOnly), p.Level, p.Effective,
			levelName(p.Effective), orDash(p.Source))
	}
	_, err := fmt.Fprintln(a.stdout, line)
	return err
}
