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

// userCmd implements "user add NAME --tier T [--users FILE | --data-dir D]";
// the password is the first line of stdin, so it never shows in ps.
func userCmd(args []string, stdin io.Reader, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "add" {
		return errors.New("usage: kedge-daemon user add NAME --tier TIER [--users FILE | --data-dir DIR] < password")
	}
	name := args[1]
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tier := fs.String("tier", "observer", "master, site-owner, operator or observer")
	users := fs.String("users", "", "users file (default <data-dir>/users.yaml)")
	dataDir := fs.String("data-dir", "/var/lib/kedge", "data dir")
	if err := fs.Parse(args[2:]); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	t, err := auth.ParseTier(*tier)
	if err != nil {
		return err
	}
	path := *users
	if path == "" {
		path = filepath.Join(*dataDir, "users.yaml")
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
