package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/hookline/hookline/migrations/dbtest"
)

// cli runs a command line as main does, with env as the whole environment,
// and returns its exit code and output.
func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// commandPaths lists every command and subcommand of hookline, as the words
// after "hookline", cobra's own help and completion commands included.
func commandPaths() [][]string {
	root := (&app{}).commands()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var paths [][]string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		paths = append(paths, strings.Fields(strings.TrimPrefix(c.CommandPath(), "hookline")))
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return paths
}

// TestHelpWithoutDatabase asks every command for its help, as --help, -h and
// `hookline help …`, with no DATABASE_URL and nothing else set: each answers
// its usage on stdout with exit 0, and nothing is written, not even the
// development encryption key.
func TestHelpWithoutDatabase(t *testing.T) {
	t.Parallel()

	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"HOOKLINE_DATA_DIR": dataDir}
	paths := commandPaths()
	if len(paths) < 15 {
		t.Fatalf("%d commands found: the walk missed some", len(paths))
	}
	for _, path := range paths {
		for _, args := range [][]string{slices.Concat(path, []string{"--help"}), slices.Concat(path, []string{"-h"}), slices.Concat([]string{"help"}, path)} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()

				code, stdout, stderr := cli(t, env, args...)
				if code != exitOK || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
				}
				if want := strings.TrimSpace("hookline " + strings.Join(path, " ")); !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, want) {
					t.Fatalf("the help does not give the usage of %q:\n%s", want, stdout)
				}
			})
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Errorf("asking for help created %s (%v)", dataDir, err)
		}
	})
}

// TestHelpActsOnNothing asks for the help of the commands that write, with a
// database: the schema stays empty, and no id is taken from --help.
func TestHelpActsOnNothing(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema, url := dbtest.NewSchema(t)
	env := map[string]string{"DATABASE_URL": url, "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}
	for _, args := range [][]string{
		{"migrate", "--help"}, {"migrate", "-h"}, {"help", "migrate"},
		{"merchant", "create", "--name", "Coinable", "--help"},
		{"deliveries", "retry", "--help"}, {"deliveries", "retry", "dlv_x", "--help"},
		{"deliveries", "recover", "--endpoint", "we_x", "--since", "1h", "--help"},
		{"endpoints", "enable", "--help"}, {"keys", "reencrypt", "--help"},
	} {
		if code, stdout, stderr := cli(t, env, args...); code != exitOK || !strings.Contains(stdout, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the usage and 0", args, code, stdout, stderr)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var tables int
	if err := pool.QueryRow(ctx, `select count(*) from information_schema.tables where table_schema = $1`, schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("asking for help created %d tables", tables)
	}
}

// TestCommandLineErrors checks the exit codes: 2 for a mistake in the
// command line, with a message that says what is allowed and where the usage
// is, before anything connects; 1 for a command that fails.
func TestCommandLineErrors(t *testing.T) {
	t.Parallel()

	// No DATABASE_URL: a usage error is found before the database is needed.
	env := map[string]string{"HOOKLINE_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	tests := []struct {
		args     []string
		wantCode int
		want     []string // substrings of stderr
	}{
		{[]string{"deliveries", "list", "--status", "nope"}, exitUsage,
			[]string{`"nope"`, "--status", "failed, pending, succeeded or all", "Run 'hookline deliveries list --help'"}},
		{[]string{"serve", "--role", "everything"}, exitUsage, []string{"--role", "all, api or worker"}},
		{[]string{"nope"}, exitUsage, []string{`unknown command "nope"`, "deliveries", "Run 'hookline --help'"}},
		{[]string{"deliveries", "nope"}, exitUsage, []string{`unknown command "nope"`, "list, recover or retry"}},
		{[]string{}, exitUsage, []string{"missing command", "Run 'hookline --help'"}},
		{[]string{"deliveries"}, exitUsage, []string{"missing command: list, recover or retry", "Run 'hookline deliveries --help'"}},
		{[]string{"deliveries", "list", "--colour", "red"}, exitUsage, []string{"unknown flag: --colour"}},
		{[]string{"deliveries", "list", "--limit", "0"}, exitUsage, []string{"--limit", "1 to 1000"}},
		{[]string{"deliveries", "list", "--limit", "many"}, exitUsage, []string{"--limit"}},
		{[]string{"deliveries", "retry"}, exitUsage, []string{"missing delivery ids"}},
		{[]string{"deliveries", "recover", "--endpoint", "we_x"}, exitUsage, []string{`"since"`}},
		{[]string{"deliveries", "recover", "--endpoint", "we_x", "--since", "yesterday"}, exitUsage, []string{"--since", "RFC 3339"}},
		{[]string{"endpoints", "enable"}, exitUsage, []string{"one endpoint id"}},
		{[]string{"endpoints", "enable", "we_a", "we_b"}, exitUsage, []string{"one endpoint id"}},
		{[]string{"endpoints", "list"}, exitUsage, []string{"--failing"}},
		{[]string{"merchant", "create"}, exitUsage, []string{`"name"`}},
		{[]string{"migrate", "now"}, exitUsage, []string{"unknown command"}},
		{[]string{"deliveries", "list"}, exitFailure, []string{"DATABASE_URL"}},
		{[]string{"migrate"}, exitFailure, []string{"DATABASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()

			code, stdout, stderr := cli(t, env, tt.args...)
			if code != tt.wantCode || stdout != "" {
				t.Errorf("exit %d with stdout %q, want %d and nothing", code, stdout, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestCompletion: the shells' scripts, and the words of a flag that takes a
// few (what the scripts ask hookline for when the operator presses tab).
func TestCompletion(t *testing.T) {
	t.Parallel()

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if code, stdout, _ := cli(t, nil, "completion", shell); code != exitOK || !strings.Contains(stdout, "hookline") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(stdout))
		}
	}
	code, stdout, _ := cli(t, nil, cobra.ShellCompRequestCmd, "deliveries", "list", "--status", "")
	if code != exitOK || !strings.HasPrefix(stdout, "failed\npending\nsucceeded\nall\n") {
		t.Errorf("completing --status: exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = cli(t, nil, cobra.ShellCompRequestCmd, "deliveries", "")
	if code != exitOK || !strings.Contains(stdout, "recover") || !strings.Contains(stdout, "retry") {
		t.Errorf("completing deliveries' commands: exit %d:\n%s", code, stdout)
	}
}
