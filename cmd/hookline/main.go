// Command hookline runs hookline: the REST API and the delivery workers
// (serve), the database migrations (migrate), and operator tasks.
//
// The command line is built on spf13/cobra, the library of kubectl, gh and
// Hugo, rather than the standard flag package: it gives every command and
// subcommand its --help (and `hookline help …`) before anything runs, so
// asking for help needs no database and has no effect; shell completion
// (`hookline completion bash|zsh|fish|powershell`); flags parsed by pflag
// into values that validate themselves; and it tells a mistake in the command
// line from a failure of the command, which hookline's exit codes keep apart:
// 0 success, 1 failure, 2 usage (an unknown command or flag, an invalid flag
// value, a missing argument).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations"
)

// Exit codes (README, "Commands and configuration").
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := execute(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs a command line, prints its error if any, and returns the
// process's exit code: main's only job is to give it the process.
func execute(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, stdout, stderr)
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "hookline: %v\nRun '%s --help' for usage.\n", err, usage.command)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "hookline:", err)
		return exitFailure
	}
}

// usageError is a mistake in the command line (exit 2), as opposed to a
// command that failed (exit 1).
type usageError struct {
	command string // the command path whose --help tells the right usage
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef is a usage error of cmd.
func usagef(cmd *cobra.Command, format string, a ...any) error {
	return &usageError{command: cmd.CommandPath(), err: fmt.Errorf(format, a...)}
}

// run parses a command line and runs its command. Any error cobra reports
// before a command starts (unknown command or flag, invalid flag value,
// missing argument or required flag) is a usage error; a command's own errors
// are failures unless it says otherwise.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a := &app{getenv: getenv, stdout: stdout, stderr: stderr}
	root := a.commands()
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && !a.started {
		var usage *usageError
		if !errors.As(err, &usage) {
			err = &usageError{command: cmd.CommandPath(), err: err}
		}
	}
	return err
}

// app is one run of the command line: the environment the commands read
// their configuration from, and where they write.
type app struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	started        bool // a command's own code ran: its errors are not usage errors
}

// action wraps a command's code, so that run can tell its errors from
// cobra's.
func (a *app) action(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return f(cmd, args)
	}
}

// setup reads the configuration and builds the logger, the first thing a
// command that acts does (never one asked for help).
func (a *app) setup(ctx context.Context) (config, *slog.Logger, error) {
	cfg, err := loadConfig(a.getenv)
	if err != nil {
		return cfg, nil, err
	}
	logger := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if cfg.LocalCluster != "" {
		// Said every time: the operator should know which database a command acts on.
		logger.InfoContext(ctx, "DATABASE_URL is unset: using the local cluster of make run", slog.String("dir", cfg.LocalCluster))
	}
	return cfg, logger, nil
}

// commands is hookline's command tree.
func (a *app) commands() *cobra.Command {
	root := &cobra.Command{
		Use:   "hookline",
		Short: "hookline delivers a payment platform's events to merchants' webhooks",
		Long: `hookline delivers a payment platform's events to merchants' webhook endpoints:
one Go binary (the REST API and the River delivery workers) over one Postgres.

Configuration comes from the environment: DATABASE_URL (in development, when it
is unset, the cluster ` + "`make run`" + ` keeps in .hookline/pg), HOOKLINE_ADDR,
HOOKLINE_METRICS_ADDR, HOOKLINE_ENV, HOOKLINE_RETRY_SCHEDULE,
HOOKLINE_DELIVERY_TIMEOUT, HOOKLINE_OPERATOR_TOKEN, HOOKLINE_ENCRYPTION_KEY,
HOOKLINE_DATA_DIR, HOOKLINE_ALLOW_PRIVATE_CIDRS, HOOKLINE_RATE_LIMIT,
HOOKLINE_RATE_BURST, HOOKLINE_MAX_ENDPOINTS, HOOKLINE_ENDPOINT_CONCURRENCY,
HOOKLINE_DB_MAX_CONNS, HOOKLINE_RETENTION, HOOKLINE_TRUSTED_PROXIES,
HOOKLINE_LOG_LEVEL, and OpenTelemetry's OTEL_* variables for traces
(OTEL_EXPORTER_OTLP_ENDPOINT turns them on). See README.md.

Exit codes: 0 success, 1 failure, 2 usage error.`,
		SilenceErrors: true, // execute prints them, and chooses the exit code
		SilenceUsage:  true,
		Args:          a.subcommand,
		RunE:          a.subcommandMissing,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usagef(cmd, "%v", err) })
	root.AddCommand(a.serveCommand(), a.migrateCommand(), a.merchantCommand(), a.listenCommand(), a.deliveriesCommand(),
		a.endpointsCommand(), a.keysCommand())
	return root
}

// subcommand validates the arguments of a command that only groups others:
// an argument is a command it does not have.
func (a *app) subcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usagef(cmd, "unknown command %q for %q: %s", args[0], cmd.CommandPath(), orList(names))
	}
	return nil
}

// subcommandMissing is the run of a command that only groups others, called
// alone: a usage error (a missing argument) rather than cobra's help and 0.
func (a *app) subcommandMissing(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usagef(cmd, "missing command: %s", orList(names))
}

// group is a command that only holds subcommands.
func (a *app) group(use, short string, subcommands ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: a.subcommand, RunE: a.subcommandMissing}
	cmd.AddCommand(subcommands...)
	return cmd
}

func (a *app) serveCommand() *cobra.Command {
	role := newChoice(RoleAll, RoleAll, RoleAPI, RoleWorker)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the REST API and the delivery workers; SIGTERM drains, then exits 0",
		Long: `Run the REST API and the delivery workers (River) in one process (--role all),
or one of them: API nodes and worker nodes scale apart over one Postgres.
SIGTERM drains: in-flight requests and deliveries finish, then hookline exits 0.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := a.setup(cmd.Context())
			if err != nil {
				return err
			}
			keyring, err := cfg.keyring()
			if err != nil {
				return err
			}
			if a.getenv("GOGC") == "" {
				// hookline's heap is small and churns fast: collecting at 4x the
				// live heap rather than Go's 2x gave make bench, on 2 cores, a
				// backlog drain of 7,132 rather than 6,787 deliveries/s and a
				// burst of 4,356 rather than 3,619/s (one run each), for a peak
				// RSS of 73 rather than 44 MiB in the burst.
				debug.SetGCPercent(400)
			}
			m, err := New(cmd.Context(), cfg, role.value, keyring, logger)
			if err != nil {
				return err
			}
			defer m.Close()
			return m.Run(cmd.Context())
		}),
	}
	role.add(cmd, "role", "api (the REST API), worker (deliveries and jobs), or all")
	return cmd
}

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply River's migrations, then hookline's; idempotent",
		Long: `Apply River's migrations, then hookline's, to DATABASE_URL. Safe to run again
and from several processes at once: what has run is skipped. Run it once per
release, before the new processes start.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := a.setup(cmd.Context())
			if err != nil {
				return err
			}
			return withPool(cmd.Context(), cfg, func(pool *pgxpool.Pool) error {
				if err := migrations.Up(cmd.Context(), pool); err != nil {
					return err
				}
				logger.InfoContext(cmd.Context(), "migrations applied")
				return nil
			})
		}),
	}
}

func (a *app) merchantCommand() *cobra.Command {
	var name string
	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a merchant and print its keys as JSON",
		Long: `Create a merchant and print one JSON object with its keys, shown only here:
{"id","name","test_api_key","live_api_key","webhook_secret","test_webhook_secret"}.`,
		Example: `  hookline merchant create --name "Coinable" > coinable-keys.json`,
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			return a.withKeyring(cmd, func(pool *pgxpool.Pool, keyring *events.Keyring) error {
				var created *events.NewMerchant
				err := pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) error {
					var err error
					created, err = events.CreateMerchant(cmd.Context(), tx, keyring, name)
					return err
				})
				var invalid *events.InvalidError
				if errors.As(err, &invalid) {
					return usagef(cmd, "--%s %s", invalid.Param, invalid.Message)
				}
				if err != nil {
					return err
				}
				return json.NewEncoder(a.stdout).Encode(created)
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "the merchant's name")
	_ = create.MarkFlagRequired("name") // the flag exists
	return a.group("merchant", "Create merchants", create)
}

// withKeyring runs f with a pool on the configured database and the keyring
// that seals stored secrets (in development, made on first use).
func (a *app) withKeyring(cmd *cobra.Command, f func(*pgxpool.Pool, *events.Keyring) error) error {
	cfg, _, err := a.setup(cmd.Context())
	if err != nil {
		return err
	}
	keyring, err := cfg.keyring()
	if err != nil {
		return err
	}
	return withPool(cmd.Context(), cfg, func(pool *pgxpool.Pool) error { return f(pool, keyring) })
}

func withPool(ctx context.Context, cfg config, f func(*pgxpool.Pool) error) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer pool.Close()
	return f(pool)
}

// keysCommand generates keys and re-encrypts stored secrets, the two steps of
// a key rotation (README, "Security").
func (a *app) keysCommand() *cobra.Command {
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Print a new HOOKLINE_ENCRYPTION_KEY entry",
		Long: `Print a new HOOKLINE_ENCRYPTION_KEY entry (id:base64 of 32 random bytes). To
rotate: put it first in HOOKLINE_ENCRYPTION_KEY, restart, run
` + "`hookline keys reencrypt`" + `, then drop the old entry.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.stdout, events.NewKeySpec("k"+time.Now().UTC().Format("20060102")))
			return err
		}),
	}
	reencrypt := &cobra.Command{
		Use:   "reencrypt",
		Short: "Seal every stored secret with the first key of HOOKLINE_ENCRYPTION_KEY",
		Long: `Seal every stored secret (endpoints' current and previous ones, merchants'
account secrets) with the first key of HOOKLINE_ENCRYPTION_KEY, and print how
many were resealed: {"merchants":N,"endpoints":N}.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			return a.withKeyring(cmd, func(pool *pgxpool.Pool, keyring *events.Keyring) error {
				var merchants, endpoints int
				err := pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) (err error) {
					if merchants, err = events.ReencryptMerchants(cmd.Context(), tx, keyring); err != nil {
						return err
					}
					endpoints, err = delivery.ReencryptEndpoints(cmd.Context(), tx, keyring)
					return err
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "{\"merchants\":%d,\"endpoints\":%d}\n", merchants, endpoints)
				return err
			})
		}),
	}
	return a.group("keys", "Generate encryption keys and reseal stored secrets", generate, reencrypt)
}
