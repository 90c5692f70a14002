// Command hookline runs hookline: the REST API and the delivery workers
// (serve), the database migrations (migrate), and operator tasks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations"
)

const usage = `usage:
  hookline serve [--role all|api|worker]
                                      run the REST API and the delivery workers (all), or one of them
  hookline migrate                    apply River's and hookline's migrations
  hookline merchant create --name N   create a merchant and print its keys as JSON
  hookline listen --forward-to URL [--events t1,t2] [--api URL] [--api-key sk_test_…]
                                      forward the key's new events to a local URL, signed with a
                                      secret made for the session (the key may be in HOOKLINE_API_KEY)

operators:
  hookline deliveries retry DLV_ID…   one immediate attempt of each delivery, whatever its status
  hookline deliveries recover --endpoint WE_ID --since WHEN [--until WHEN] [--dry-run]
                                      retry an endpoint's failed deliveries of a window (at most 14 days);
                                      WHEN is RFC 3339 or a duration meaning that long ago (6h)
  hookline deliveries list [--status failed|pending|succeeded|all] [--limit N]
  hookline endpoints list --failing   endpoints failing now or disabled by hookline
  hookline endpoints enable WE_ID     turn an endpoint back on
  hookline keys generate              print a new HOOKLINE_ENCRYPTION_KEY entry
  hookline keys reencrypt             seal every stored secret with the first key of HOOKLINE_ENCRYPTION_KEY

Configuration comes from the environment: DATABASE_URL (required), HOOKLINE_ADDR,
HOOKLINE_METRICS_ADDR, HOOKLINE_ENV, HOOKLINE_RETRY_SCHEDULE, HOOKLINE_DELIVERY_TIMEOUT,
HOOKLINE_OPERATOR_TOKEN, HOOKLINE_ENCRYPTION_KEY, HOOKLINE_DATA_DIR, HOOKLINE_RATE_LIMIT,
HOOKLINE_RATE_BURST, HOOKLINE_MAX_ENDPOINTS, HOOKLINE_LOG_LEVEL. See README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hookline:", err)
		if _, usage := errors.AsType[*usageError](err); usage {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run dispatches a command line; main's only job is to give it the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	if args[0] == "listen" {
		// A developer's tool: it talks to the API, never to the database.
		return listenCommand(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	keyring, err := cfg.keyring()
	if err != nil {
		return err
	}

	switch args[0] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		role := fs.String("role", RoleAll, "api (the REST API), worker (deliveries and jobs), or all")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if getenv("GOGC") == "" {
			// hookline's heap is small and churns fast: collecting at 4x the
			// live heap rather than Go's 2x gave make bench, on 2 cores, a
			// backlog drain of 7,132 rather than 6,787 deliveries/s and a
			// burst of 4,356 rather than 3,619/s (one run each), for a peak
			// RSS of 73 rather than 44 MiB in the burst.
			debug.SetGCPercent(400)
		}
		m, err := New(ctx, cfg, *role, keyring, logger)
		if err != nil {
			return err
		}
		defer m.Close()
		return m.Run(ctx)
	case "migrate":
		return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
			if err := migrations.Up(ctx, pool); err != nil {
				return err
			}
			logger.InfoContext(ctx, "migrations applied")
			return nil
		})
	case "merchant":
		return merchantCommand(ctx, cfg, keyring, args[1:], stdout)
	case "deliveries":
		return deliveriesCommand(ctx, cfg, args[1:], stdout)
	case "endpoints":
		return endpointsCommand(ctx, cfg, args[1:], stdout)
	case "keys":
		return keysCommand(ctx, cfg, keyring, args[1:], stdout)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func merchantCommand(ctx context.Context, cfg config, keyring *events.Keyring, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: hookline merchant create --name NAME")
	}
	fs := flag.NewFlagSet("merchant create", flag.ContinueOnError)
	name := fs.String("name", "", "the merchant's name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
		var created *events.NewMerchant
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			created, err = events.CreateMerchant(ctx, tx, keyring, *name)
			return err
		})
		var invalid *events.InvalidError
		if errors.As(err, &invalid) {
			return fmt.Errorf("--%s %s", invalid.Param, invalid.Message)
		}
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(created)
	})
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
func keysCommand(ctx context.Context, cfg config, keyring *events.Keyring, args []string, stdout io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "generate":
		_, err := fmt.Fprintln(stdout, events.NewKeySpec("k"+time.Now().UTC().Format("20060102")))
		return err
	case len(args) == 1 && args[0] == "reencrypt":
		return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
			var merchants, endpoints int
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
				if merchants, err = events.ReencryptMerchants(ctx, tx, keyring); err != nil {
					return err
				}
				endpoints, err = delivery.ReencryptEndpoints(ctx, tx, keyring)
				return err
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "{\"merchants\":%d,\"endpoints\":%d}\n", merchants, endpoints)
			return err
		})
	default:
		return errors.New("usage: hookline keys generate | reencrypt")
	}
}
