package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/guildhouse-co/kedge/server/auth"
)

// userOpts are user add's flags.
type userOpts struct {
	tier, users, dataDir *string
}

func userFlags() (*flag.FlagSet, userOpts) {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	o := userOpts{
		tier:    fs.String("tier", "observer", "master, site-owner, operator or observer"),
		users:   fs.String("users", "", "users file (default <data-dir>/users.yaml)"),
		dataDir: fs.String("data-dir", "/var/lib/kedge", "data dir"),
	}
	return fs, o
}

// userCmd implements "user add NAME --tier T [--users FILE | --data-dir D]";
// the password is the first line of stdin, so it never shows in ps.
func userCmd(args []string, stdin io.Reader, _, stderr io.Writer) error {
	for _, a := range args[:min(len(args), 2)] {
		if isHelp(a) {
			return flag.ErrHelp
		}
	}
	if len(args) < 2 || args[0] != "add" || strings.HasPrefix(args[1], "-") {
		return fmt.Errorf("%w: want user add NAME first", errUsage)
	}
	name := args[1]
	fs, o := userFlags()
	if err := parseFlags(fs, args[2:]); err != nil {
		return err
	}
	t, err := auth.ParseTier(*o.tier)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	path := *o.users
	if path == "" {
		path = filepath.Join(*o.dataDir, "users.yaml")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		return errors.New("read password: want at least 8 characters on stdin")
	}
	uf := &auth.UsersFile{}
	if _, err := os.Stat(path); err == nil {
		if uf, err = auth.LoadUsers(path); err != nil {
			return err
		}
	}
	if err := uf.Put(name, t, pw); err != nil {
		return err
	}
	if err := uf.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "user %s (tier %s) saved in %s\n", name, t, path)
	return nil
}
