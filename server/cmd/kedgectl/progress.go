package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	"gopkg.in/yaml.v3"
)

// isTerminal reports whether w is a terminal (progress redraws in place
// there; elsewhere it prints lines a log can keep).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// emitLine writes v as one JSON line or one YAML document, for streams
// of events.
func (a *app) emitLine(v any) error {
	if a.output == "yaml" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
		out, err := yaml.Marshal(x)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "---\n%s", out)
		return err
	}
	return json.NewEncoder(a.stdout).Encode(v)
}

// countdown shows a line that changes every second: redrawn in place on
// a terminal, otherwise printed when its text changes in more than the
// seconds (the first time, then every tenth second), so a log keeps a
// few lines rather than one per second.
type countdown struct {
	w     io.Writer
	tty   bool
	shown bool
	n     int
}

func (c *countdown) show(s string) {
	if c.tty {
		fmt.Fprintf(c.w, "\r\033[K%s", s)
		c.shown = true
		return
	}
	if c.n%10 == 0 {
		fmt.Fprintln(c.w, s)
	}
	c.n++
}

// done ends the redrawn line.
func (c *countdown) done() {
	if c.tty && c.shown {
		fmt.Fprintln(c.w)
		c.shown = false
	}
}

// progress draws a bar for a bulk operation: in place on a terminal,
// otherwise one line per tenth of the work.
type progress struct {
	w     io.Writer
	tty   bool
	what  string
	total int
	start time.Time
	now   func() time.Time
	last  int // tenths printed (non-terminal)
}

func newProgress(w io.Writer, what string, total int, now func() time.Time) *progress {
	return &progress{w: w, tty: isTerminal(w), what: what, total: total, start: now(), now: now, last: -1}
}

const barWidth = 30

func (p *progress) line(done int) string {
	frac := 1.0
	if p.total > 0 {
		frac = float64(done) / float64(p.total)
	}
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	el := p.now().Sub(p.start)
	rate := ""
	if s := el.Seconds(); s > 0 && done > 0 {
		rate = fmt.Sprintf(", %.0f/s", float64(done)/s)
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%d %s (%s%s)", bar, 100*frac, done, p.total, p.what, el.Round(time.Millisecond), rate)
}

// set shows that done of total are finished.
func (p *progress) set(done int) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(done))
		return
	}
	tenth := 10
	if p.total > 0 {
		tenth = done * 10 / p.total
	}
	if tenth > p.last {
		p.last = tenth
		fmt.Fprintln(p.w, p.line(done))
	}
}

// finish ends the bar with the final count.
func (p *progress) finish(done int) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(done))
		return
	}
	if p.total == 0 || done*10/p.total > p.last {
		fmt.Fprintln(p.w, p.line(done))
	}
}
