package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookline/hookline/migrations/dbtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// readmeBlock is a shell block of README.md (```sh) and what the README says
// to do with it in the HTML comment on the line before its fence:
// `<!-- readme-test: background -->` runs it beside the others until they are
// done (a command that runs until ^C, such as hookline listen), and
// `<!-- readme-test: skip REASON -->` leaves it out (illustration: a synopsis
// with placeholders, or make run and make test themselves). Every other
// block runs.
type readmeBlock struct {
	line int    // of the fence
	mode string // "run", "background" or "skip"
	text string
}

// readmeShellBlocks reads the shell blocks of the README at path.
func readmeShellBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "```sh" || line == "```bash" || line == "```shell":
			cur = &readmeBlock{line: n, mode: "run"}
			if directive, ok := strings.CutPrefix(prev, "<!-- readme-test: "); ok {
				switch {
				case strings.HasPrefix(directive, "background"):
					cur.mode = "background"
				case strings.HasPrefix(directive, "skip "):
					cur.mode = "skip"
				default:
					t.Fatalf("README.md:%d: unknown directive %q", n-1, prev)
				}
			}
		case strings.HasPrefix(line, "```sh ") || strings.HasPrefix(line, "```bash "):
			t.Fatalf("README.md:%d: %q: mark a block with a <!-- readme-test: … --> comment, not in its fence", n, line)
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: block never closed", cur.line)
	}
	return blocks
}

// TestREADME runs the README's shell blocks, in order, in one shell, as a
// newcomer would in a checkout after `make run`: against a served hookline,
// with the demo merchant `make run` creates in
// .hookline/demo-merchant-local.json and ./hookline being this program. The
// README's API address (make run's 127.0.0.1:8080) is the served one's, and
// its receiver's (127.0.0.1:9000) a loopback receiver's here. A command that
// fails, or a request that answers an HTTP error (curl runs with
// --fail-with-body), fails the test: the README cannot rot. hookline listen
// (a background block) must show every event the blocks produce, in stream
// order, and forward each one to the receiver signed with the whsec_ secret
// its Ready line printed.
func TestREADME(t *testing.T) {
	t.Parallel()

	blocks := readmeShellBlocks(t, "../../README.md")
	run := 0
	for _, b := range blocks {
		if b.mode != "skip" {
			run++
		}
	}
	if run < 4 {
		t.Fatalf("only %d shell blocks of README.md run", run)
	}

	pool, dbURL := migratedPool(t)
	// The API role only, with no delivery workers: the README's blocks
	// register endpoints at real Discord and Slack URLs (and at its
	// receiver's), which a worker would try to deliver to, reaching addresses
	// off this machine. Only listen's forwards reach the receiver.
	m, stop := launchAs(t, RoleAPI, map[string]string{"DATABASE_URL": dbURL}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)
	api := "http://" + m.Addr()
	receiver, received := readmeReceiver(t)

	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// ./hookline: this test binary running main (TestMain). listen's default
	// API is make run's address; this one's is elsewhere.
	wrapper := `#!/bin/sh
if [ "$1" = listen ]; then shift; set -- listen --api "$README_TEST_API" "$@"; fi
HOOKLINE_TEST_RUN_MAIN=1 exec "$README_TEST_BINARY" "$@"
`
	if err := os.WriteFile(filepath.Join(dir, "hookline"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "README_TEST_API="+api, "README_TEST_BINARY="+exe,
		"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "HOOKLINE_API_KEY=", "DATABASE_URL="+dbURL,
		"HOOKLINE_ENCRYPTION_KEY="+dbtest.KeySpec)
	shell := func(script string) *exec.Cmd {
		cmd := exec.Command("bash", "-c", `set -euo pipefail
curl() { command curl --fail-with-body --silent --show-error --max-time 30 "$@"; }
`+script)
		cmd.Dir, cmd.Env = dir, env
		return cmd
	}
	// The demo merchant, as make run creates it.
	if out, err := shell(`mkdir -p .hookline && ./hookline merchant create --name "Demo merchant" > .hookline/demo-merchant-local.json`).CombinedOutput(); err != nil {
		t.Fatalf("merchant create: %v\n%s", err, out)
	}

	var script strings.Builder
	var background []*exec.Cmd
	var backgroundOut []*lockedBuffer
	for _, b := range blocks {
		text := strings.ReplaceAll(b.text, "http://127.0.0.1:8080", api)
		text = strings.ReplaceAll(text, "http://127.0.0.1:9000", receiver)
		switch b.mode {
		case "run":
			script.WriteString("echo '### README.md:" + strconv.Itoa(b.line) + "' >&2\n" + text)
		case "background":
			cmd := shell(text)
			out := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			background, backgroundOut = append(background, cmd), append(backgroundOut, out)
			// It starts before the blocks after it, as a reader starts it in
			// another terminal: wait (bounded) until it says something.
			for deadline := time.Now().Add(60 * time.Second); out.Len() == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("README.md:%d: the background block said nothing in 60 s", b.line)
				}
			}
		}
	}
	out, err := shell(script.String()).CombinedOutput()
	t.Logf("README's blocks:\n%s", out)
	if err != nil {
		t.Errorf("README's blocks failed (the last ### line names the block): %v", err)
	}
	if len(background) != 1 {
		t.Fatalf("README.md has %d background blocks; this test checks one, hookline listen", len(background))
	}
	checkListen(t, pool, backgroundOut[0], received)
	for i, cmd := range background {
		// ^C, as the reader ends them; they must end well (exit 0).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("background block %d ended with %v:\n%s", i, err, backgroundOut[i].String())
			}
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("background block %d did not end on ^C:\n%s", i, backgroundOut[i].String())
		}
		t.Logf("background block %d:\n%s", i, backgroundOut[i].String())
	}
}

// readmeRequest is a request the README's receiver got.
type readmeRequest struct {
	header http.Header
	body   []byte
}

// readmeReceiver is the README's receiver (its 127.0.0.1:9000): it keeps
// every request, answers 204, and returns its URL and what it got so far.
func readmeReceiver(t *testing.T) (string, func() []readmeRequest) {
	t.Helper()
	var mu sync.Mutex
	var got []readmeRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		mu.Lock()
		got = append(got, readmeRequest{header: r.Header.Clone(), body: body})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []readmeRequest {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// checkListen checks what the README's hookline listen showed and forwarded:
// every test-mode event in the database (only the demo merchant's: the
// schema is the test's own), in stream order (txid, id), shown with its -->
// and <-- [204] lines, and received once each, in that order, signed with
// the session secret of listen's Ready line. The stream serves an event only
// once every transaction older than it on the whole Postgres cluster has
// ended (events/stream.go), so a long transaction of another test delays
// it: the wait is bounded but generous, not a measure of speed.
func checkListen(t *testing.T, pool *pgxpool.Pool, out *lockedBuffer, received func() []readmeRequest) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select id, type from events where not livemode order by txid, id`)
	if err != nil {
		t.Fatal(err)
	}
	type event struct{ id, typ string }
	want, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event, error) {
		var e event
		return e, r.Scan(&e.id, &e.typ)
	})
	if err != nil {
		t.Fatal(err)
	}
	// send_test_event, the walkthrough's two checkouts (created, attempt
	// created, attempt succeeded or failed, paid or failed): at least 9.
	if len(want) < 9 {
		t.Fatalf("the README's blocks produced %d events, want at least 9: %v", len(want), want)
	}
	last := want[len(want)-1]
	// The <-- line of the last event: listen prints it once the receiver
	// has answered that event's forward, which follows its --> line.
	lastLine := regexp.MustCompile(`(?m)^\S+ \S+ <-- \[\d+\] POST \S+ \[` + last.id + `\]$`)
	for deadline := time.Now().Add(120 * time.Second); !lastLine.MatchString(out.String()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hookline listen did not show the forward of the last event (%s %s) within 120 s:\n%s", last.typ, last.id, out.String())
		}
	}
	shown := out.String()
	m := regexp.MustCompile(`(?m)^Ready\. Your webhook signing secret is (whsec_\S+) \(\^C to quit\)$`).FindStringSubmatch(shown)
	if m == nil {
		t.Fatalf("hookline listen printed no Ready line:\n%s", shown)
	}
	wh, err := standardwebhooks.NewWebhook(m[1])
	if err != nil {
		t.Fatalf("listen's secret %q: %v", m[1], err)
	}
	got := received()
	if len(got) != len(want) {
		t.Errorf("the receiver got %d requests, want %d (one per event)", len(got), len(want))
	}
	for i, e := range want {
		for _, line := range []string{`--> ` + regexp.QuoteMeta(e.typ) + ` \[` + e.id + `\]`, `<-- \[204\] POST \S+/webhooks \[` + e.id + `\]`} {
			if !regexp.MustCompile(`(?m)^\S+ \S+ ` + line + `$`).MatchString(shown) {
				t.Errorf("listen did not show %q for %s %s", line, e.typ, e.id)
			}
		}
		if i >= len(got) {
			continue
		}
		r := got[i]
		if id := r.header.Get("webhook-id"); id != e.id {
			t.Errorf("request %d is %s, want %s (%s): stream order", i, id, e.id, e.typ)
			continue
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("%s (%s) does not verify with listen's secret: %v", e.id, e.typ, err)
		}
		var env struct{ ID, Type string }
		if err := json.Unmarshal(r.body, &env); err != nil || env.ID != e.id || env.Type != e.typ {
			t.Errorf("%s's body is %s, want the %s event %s (%v)", e.id, r.body, e.typ, e.id, err)
		}
	}
	if t.Failed() {
		t.Logf("hookline listen:\n%s", shown)
	}
}

// lockedBuffer is a process's output, read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
