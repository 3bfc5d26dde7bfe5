package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/guildhouse-co/kedge/tests/needs"
)

// cdp drives a headless Chromium through the DevTools protocol over
// --remote-debugging-pipe: Chromium reads commands from its fd 3 and
// writes responses and events to its fd 4, each a JSON message ended by
// a NUL byte. No network port is opened for it.
type cdp struct {
	cmd *exec.Cmd
	w   io.WriteCloser

	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMsg
	onEvent func(cdpMsg)
	done    chan struct{}
	err     error
}

type cdpMsg struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// chromiumPath finds Debian's chromium (or another Chromium build).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return needs.Tool(t, "chromium", "the status page test drives headless Chromium (Debian: apt-get install chromium)")
}

// startChromium starts a headless Chromium with its own profile; onEvent
// sees every event (from the reading goroutine).
func startChromium(t testing.TB, onEvent func(cdpMsg)) *cdp {
	t.Helper()
	bin := chromiumPath(t)
	cmdR, cmdW, err := os.Pipe() // our commands → Chromium's fd 3
	if err != nil {
		t.Fatal(err)
	}
	resR, resW, err := os.Pipe() // Chromium's fd 4 → us
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
		"--hide-scrollbars", "--mute-audio", "--window-size=1280,1500", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, resW}
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmdR.Close()
	resW.Close()
	c := &cdp{cmd: cmd, w: cmdW, pending: map[int]chan cdpMsg{}, onEvent: onEvent, done: make(chan struct{})}
	go c.read(resR)
	t.Cleanup(func() {
		c.call(context.Background(), "", "Browser.close", nil, nil)
		cmdW.Close()
		waited := make(chan struct{})
		go func() { cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-c.done:
			cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	return c
}

func (c *cdp) read(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var b []byte
		b, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m cdpMsg
		if err = json.Unmarshal(b[:len(b)-1], &m); err != nil {
			break
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if c.onEvent != nil {
			c.onEvent(m)
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("chromium's pipe: %w", err)
	c.mu.Unlock()
	close(c.done)
}

// call sends a command (to a page's session when sessionID is set) and
// decodes its result into result (nil: ignored).
func (c *cdp) call(ctx context.Context, sessionID, method string, params, result any) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if sessionID != "" {
		msg["sessionId"] = sessionID
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// page opens a tab and returns its session id.
func (c *cdp) page(ctx context.Context) (string, error) {
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		return "", err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		return "", err
	}
	return att.SessionID, nil
}

// eval evaluates a JavaScript expression in the page, awaiting a promise,
// and decodes its value into out.
func (c *cdp) eval(ctx context.Context, sid, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string          `json:"description"`
				Value       json.RawMessage `json:"value"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := c.call(ctx, sid, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return errors.New("javascript: " + e.Text + " " + e.Exception.Description + string(e.Exception.Value))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// lockedBuf is a bytes buffer safe for a process's writes and our reads.
type lockedBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
