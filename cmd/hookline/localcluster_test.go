package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/hookline/hookline/migrations/dbtest"
)

// checkout makes a directory for HOOKLINE_DATA_DIR whose pg/port holds port,
// as .ci/postgres leaves a checkout's .hookline, and returns it with pg's path.
func checkout(t *testing.T, port string) (dataDir, pg string) {
	t.Helper()
	dataDir = t.TempDir()
	pg = filepath.Join(dataDir, "pg")
	if err := os.Mkdir(pg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pg, "port"), []byte(port), 0o600); err != nil {
		t.Fatal(err)
	}
	return dataDir, pg
}

// connectsTo checks that a configuration connects as user hookline to a
// database through the socket in dir, on port, with LocalCluster saying so.
func connectsTo(dir string, port uint16, database string) func(config) bool {
	return func(c config) bool {
		conn, err := pgconn.ParseConfig(c.DatabaseURL)
		return err == nil && c.LocalCluster == dir && conn.Host == dir && conn.Port == port && conn.Database == database &&
			conn.User == "hookline"
	}
}

// TestOperatorCommandsFindTheLocalCluster runs the commands an operator runs
// beside `make run`, with no DATABASE_URL, in a checkout whose .hookline/pg
// is the test cluster (.ci/postgres's, as make test starts it): they find it.
// The database is one of its own, named by PGDATABASE.
func TestOperatorCommandsFindTheLocalCluster(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := dbtest.URL(t)
	conn, err := pgconn.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(conn.Host, "port")); !strings.HasPrefix(conn.Host, "/") || err != nil {
		t.Skipf("TEST_DATABASE_URL is not a cluster of .ci/postgres (a socket directory holding its port): %s", conn.Host)
	}
	checkout := t.TempDir()
	if err := os.Symlink(conn.Host, filepath.Join(checkout, "pg")); err != nil {
		t.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close) // after the database's drop, below
	database := "hookline_local_" + strings.ToLower(ulid.Make().String())
	if _, err := admin.Exec(ctx, "create database "+database); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "drop database "+database+" with (force)"); err != nil {
			t.Errorf("drop the test's database: %v", err)
		}
	})

	env := map[string]string{"HOOKLINE_DATA_DIR": checkout, "PGDATABASE": database, "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}
	for _, tt := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"migrate"}, ""},
		{[]string{"merchant", "create", "--name", "Local merchant"}, `"name":"Local merchant"`},
		{[]string{"endpoints", "list", "--failing"}, "ENDPOINT"},
		{[]string{"deliveries", "list", "--status", "all"}, "DELIVERY"},
	} {
		code, stdout, stderr := cli(t, env, tt.args...)
		if code != exitOK || !strings.Contains(stdout, tt.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %s", tt.args, code, stdout, stderr)
		}
		var said struct{ Msg, Dir string }
		if err := json.Unmarshal([]byte(strings.SplitN(stderr, "\n", 2)[0]), &said); err != nil ||
			!strings.Contains(said.Msg, "local cluster") || said.Dir != filepath.Join(checkout, "pg") {
			t.Errorf("%v did not say which database it uses: %q", tt.args, stderr)
		}
	}
}
