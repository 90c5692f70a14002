package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// versionTable records which of hookline's own migrations have run; River keeps
// its own record in river_migration.
const versionTable = "hookline_schema_version"

// Up applies River's migrations, then hookline's, in the schema the pool's
// search_path names. Both runners take an advisory lock and skip what has already
// run, so Up is safe to call from several processes and on every start.
func Up(ctx context.Context, pool *pgxpool.Pool) error {
	return up(ctx, pool, 0)
}

// up is Up, stopping after hookline's migration version unless version is 0:
// a test of a migration's data sets up the rows its predecessors left.
func up(ctx context.Context, pool *pgxpool.Pool, version int32) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("create river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("create migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if version == 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Digest identifies this build's migrations, names and contents: a database
// prepared from other migrations (the seeded history of the plan tests) is
// not reused.
func Digest() string {
	h := sha256.New()
	names, _ := fs.Glob(files, "*.sql") // the pattern is valid
	for _, name := range names {
		b, _ := files.ReadFile(name) // embedded: it exists
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
