package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
	"github.com/guildhouse-co/kedge/server/config"
)

func governanceFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("governance", flag.ContinueOnError)
	path := fs.String("shm-path", config.Defaults().ShmPath, "the VPP governance shared-memory segment")
	return fs, path
}

// governanceCmd prints the VPP governance segment as the VPP plugin reads
// it (dataplane/shm/governance.h): what the node's data plane was last
// told, independent of the daemon's tree.
func governanceCmd(args []string, _ io.Reader, stdout, _ io.Writer) error {
	fs, path := governanceFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r, err := segment.OpenReader(*path)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Poll()
	if err != nil {
		return err
	}
	written := "never"
	if !st.Timestamp.IsZero() {
		written = st.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(stdout, "level=%d sequence=%d flags=%#x written=%s\n", st.Level, st.Sequence, st.Flags, written)
	return nil
}
