package main

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookline/hookline/migrations/dbtest"
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
// newcomer would in a checkout after `make run`: against a served hookline
// (the API only: nothing is delivered, so no block reaches an address off
// this machine), with the demo merchant `make run` creates in
// .hookline/demo-merchant-local.json and ./hookline being this program. The
// README's API address (make run's 127.0.0.1:8080) is the served one's. A
// command that fails, or a request that answers an HTTP error (curl runs
// with --fail-with-body), fails the test: the README cannot rot.
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

	_, dbURL := migratedPool(t)
	m, stop := launchAs(t, RoleAPI, map[string]string{"DATABASE_URL": dbURL}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)
	api := "http://" + m.Addr()

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
