package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/yang"
)

// storeUsage and storeSummary describe the "store" subcommand for the
// daemon's help.
const (
	storeUsage   = "store check|recover [--data-dir DIR] [--apply]"
	storeSummary = "Check the tree store without changing it (exit 1 if it is damaged), or recover a damaged one: " +
		"recover reports what it would drop (every log record from the damage on, or the whole store if tree.db is damaged) " +
		"and, only with --apply, drops it, moving the original files into DIR/store/damaged-<time>/. " +
		"The daemon must be stopped."
)

// errStoreUsage marks a malformed "store" command line (exit 2).
var errStoreUsage = errUsage

// errStoreDamaged: the store is damaged and was not recovered (exit 1).
var errStoreDamaged = errors.New("the store is damaged")

// storeFlags is the "store" subcommand's flag set.
func storeFlags() (*flag.FlagSet, *string, *bool) {
	fs := flag.NewFlagSet("store", flag.ContinueOnError)
	dataDir := fs.String("data-dir", config.Defaults().DataDir, "the daemon's data directory (the store is <data-dir>/store), or the store directory itself")
	apply := fs.Bool("apply", false, "recover: drop what the report says (default: a dry run that changes nothing)")
	return fs, dataDir, apply
}

// storeCmd implements "store check" and "store recover [--apply]".
func storeCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: want check or recover", errStoreUsage)
	}
	verb := args[0]
	switch verb {
	case "-h", "-help", "--help", "help":
		return flag.ErrHelp
	case "check", "recover":
	default:
		return fmt.Errorf("%w: unknown verb %q, want check or recover", errStoreUsage, verb)
	}
	fs, dataDir, apply := storeFlags()
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errStoreUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errStoreUsage, fs.Arg(0))
	}
	if *apply && verb == "check" {
		return fmt.Errorf("%w: --apply is for recover; check never changes anything", errStoreUsage)
	}
	dir := storeDir(*dataDir)
	schema, err := yang.Schema()
	if err != nil {
		return fmt.Errorf("compile schema: %w", err)
	}
	r, err := store.Recover(dir, schema, *apply, time.Now())
	if err != nil {
		return err
	}
	printReport(stdout, r, verb, *apply)
	if r.Damage == nil {
		return nil
	}
	if !*apply {
		return errStoreDamaged
	}
	after, err := store.Check(dir, schema)
	if err != nil {
		return fmt.Errorf("check after recovery: %w", err)
	}
	if after.Damage != nil {
		printReport(stdout, after, "check", false)
		return fmt.Errorf("%w after recovery: run recover again", errStoreDamaged)
	}
	fmt.Fprintf(stdout, "store %s: ok now; last commit seq %d\n", dir, after.Seq)
	return nil
}

// storeDir finds the store: dir itself when it holds the store's files,
// else dir/store (the layout under the daemon's --data-dir).
func storeDir(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "tree.db")); err == nil {
		return dir
	}
	return filepath.Join(dir, "store")
}

func printReport(w io.Writer, r *store.Report, verb string, apply bool) {
	d := r.Damage
	if d == nil {
		fmt.Fprintf(w, "store %s: ok\n  last commit: seq %d (%d commits and %d meta records in the log after the snapshot)\n",
			r.Dir, r.Seq, r.Commits, r.Metas)
		if r.Torn != "" {
			fmt.Fprintf(w, "  a record torn by a crash ends the log; it was never acknowledged and is dropped on open: %s\n", r.Torn)
		}
		if verb == "recover" {
			fmt.Fprintln(w, "  nothing to recover")
		}
		return
	}
	fmt.Fprintf(w, "store %s: DAMAGED\n  %s", r.Dir, d.File)
	if d.Offset >= 0 {
		fmt.Fprintf(w, " at offset %d", d.Offset)
	}
	fmt.Fprintf(w, ": %s\n", d.Reason)
	would, keeps, drops, rewrite, move := "would", "keeps", "drops", "rewrite", "move"
	if apply {
		would, keeps, drops, rewrite, move = "did", "kept", "dropped", "rewrote", "moved"
	}
	if d.Snapshot {
		fmt.Fprintf(w, "  tree.db holds the snapshot every later commit builds on: recovery %s everything,\n"+
			"  and the node starts as a fresh one (posture level, routes, mesh: all defaults until rewritten)\n", drops)
	} else {
		fmt.Fprintf(w, "  recovery %s every commit up to seq %d and %s the damaged record and, after it, %d commits", keeps, d.KeptSeq, drops, d.Commits)
		if d.Commits > 0 {
			fmt.Fprintf(w, " (seq %d..%d)", d.FirstSeq, d.LastSeq)
		}
		fmt.Fprintf(w, " and %d meta records", d.Metas)
		if d.Unknown {
			fmt.Fprint(w, ", and an unknown number more: bytes of the log are missing")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  `kedge-daemon store recover --data-dir %s --apply` %s:\n", r.Dir, would)
	if r.Rewrite != "" {
		fmt.Fprintf(w, "    %s %s with the %d records before the damage (the original is kept aside)\n", rewrite, r.Rewrite, r.Keep)
	}
	for _, m := range r.Move {
		fmt.Fprintf(w, "    %s aside %s\n", move, m)
	}
	if r.Create != "" {
		create := "create"
		if apply {
			create = "created"
		}
		fmt.Fprintf(w, "    %s an empty %s for the log to go on in\n", create, r.Create)
	}
	if r.Aside != "" {
		fmt.Fprintf(w, "  originals are in %s\n", r.Aside)
	} else {
		fmt.Fprintf(w, "  originals go to %s/damaged-<UTC time>/; nothing is deleted\n", r.Dir)
	}
	if !apply && verb == "recover" {
		fmt.Fprintln(w, "  dry run: nothing was changed; add --apply to recover")
	}
}
