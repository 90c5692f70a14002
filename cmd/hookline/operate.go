package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// The operator commands run against DATABASE_URL wherever hookline runs: they
// only write rows and enqueue jobs, which the serving processes then work.

// maxListLimit bounds the operator lists' --limit: a screenful is what they
// are for, and each row costs its event's lookup.
const maxListLimit = 1000

func (a *app) deliveriesCommand() *cobra.Command {
	return a.group("deliveries", "Operators: retry, recover and list deliveries of any merchant",
		a.retryCommand(), a.recoverCommand(), a.listDeliveriesCommand())
}

func (a *app) endpointsCommand() *cobra.Command {
	return a.group("endpoints", "Operators: list failing endpoints, turn one back on",
		a.listEndpointsCommand(), a.enableCommand())
}

// withOperator runs f with a pool on the configured database and a
// Dispatcher on an insert-only River client.
func (a *app) withOperator(cmd *cobra.Command, f func(pool *pgxpool.Pool, d *delivery.Dispatcher) error) error {
	cfg, logger, err := a.setup(cmd.Context())
	if err != nil {
		return err
	}
	return withPool(cmd.Context(), cfg, func(pool *pgxpool.Pool) error {
		inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: riverLogger(logger)})
		if err != nil {
			return fmt.Errorf("create river inserter: %w", err)
		}
		return f(pool, delivery.NewDispatcher(inserter, nil))
	})
}

func (a *app) retryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "retry DLV_ID...",
		Short: "Schedule one immediate attempt of each delivery, whatever its status",
		Long: `Schedule one immediate attempt of each delivery, whatever its status, and print
{"retried":N} (with "not_found":[…] and exit 1 when an id is unknown).`,
		Example: "  hookline deliveries retry dlv_01JD… dlv_01JE…",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(cmd, "missing delivery ids (dlv_…): one or more")
			}
			return nil
		},
		RunE: a.action(func(cmd *cobra.Command, ids []string) error {
			return a.withOperator(cmd, func(pool *pgxpool.Pool, d *delivery.Dispatcher) error {
				out := struct {
					Retried  int      `json:"retried"`
					NotFound []string `json:"not_found,omitempty"`
				}{}
				for _, id := range ids {
					err := pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) error { return d.RetryByID(cmd.Context(), tx, id) })
					switch {
					case errors.Is(err, events.ErrNotFound):
						out.NotFound = append(out.NotFound, id)
					case err != nil:
						return err
					default:
						out.Retried++
					}
				}
				if err := json.NewEncoder(a.stdout).Encode(out); err != nil {
					return err
				}
				if len(out.NotFound) > 0 {
					return fmt.Errorf("no such delivery: %s", strings.Join(out.NotFound, ", "))
				}
				return nil
			})
		}),
	}
}

func (a *app) recoverCommand() *cobra.Command {
	var endpoint string
	var since, until when
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover --endpoint WE_ID --since WHEN [--until WHEN] [--dry-run]",
		Short: "Retry an endpoint's failed deliveries of a window (at most 14 days)",
		Long: `Retry every delivery to an endpoint that is failed and was created in the window,
each with a fresh retry schedule, as River jobs of 1,000 deliveries; print
{"matched":N,"retried":N}. WHEN is an RFC 3339 time or a Go duration meaning
that long ago (6h). The endpoint must be enabled; windows over 14 days are refused.`,
		Example: `  hookline deliveries recover --endpoint we_… --since 6h --dry-run
  hookline deliveries recover --endpoint we_… --since 2026-11-22T13:00:00Z --until 2026-11-22T18:00:00Z`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			from, to := since.at(now), until.at(now)
			if to.IsZero() {
				to = now
			}
			return a.withOperator(cmd, func(pool *pgxpool.Pool, d *delivery.Dispatcher) error {
				var r *delivery.Recovery
				err := pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) (err error) {
					r, err = d.Recover(cmd.Context(), tx, nil, endpoint, from, to, dryRun)
					return err
				})
				var invalid *events.InvalidError
				var state *events.StateError
				switch {
				case errors.As(err, &invalid):
					return usagef(cmd, "--%s %s", invalid.Param, invalid.Message)
				case errors.As(err, &state):
					return errors.New(state.Message)
				case errors.Is(err, events.ErrNotFound):
					return fmt.Errorf("no such endpoint: %s", endpoint)
				case err != nil:
					return err
				}
				return json.NewEncoder(a.stdout).Encode(r)
			})
		}),
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "the endpoint (we_…) whose failed deliveries to retry")
	cmd.Flags().Var(&since, "since", "start of the window: RFC 3339, or a duration meaning that long ago (6h)")
	cmd.Flags().Var(&until, "until", "end of the window, as --since (default: now)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count the deliveries without retrying them")
	_ = cmd.MarkFlagRequired("endpoint") // the flags exist
	_ = cmd.MarkFlagRequired("since")
	return cmd
}

func (a *app) listDeliveriesCommand() *cobra.Command {
	status := newChoice(delivery.StatusFailed, delivery.StatusFailed, delivery.StatusPending, delivery.StatusSucceeded, "all")
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--status failed|pending|succeeded|all] [--limit N]",
		Short: "List the newest deliveries of any merchant in a status",
		Args:  cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxListLimit {
				return usagef(cmd, "--limit must be from 1 to %d, not %d", maxListLimit, limit)
			}
			return a.withOperator(cmd, func(pool *pgxpool.Pool, _ *delivery.Dispatcher) error {
				s := status.value
				if s == "all" {
					s = ""
				}
				list, err := delivery.RecentDeliveries(cmd.Context(), pool, s, limit)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "DELIVERY\tMERCHANT\tEVENT\tTYPE\tENDPOINT\tSTATUS\tATTEMPTS\tLAST CODE\tCREATED")
				for _, d := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.MerchantID, d.Event, d.EventType,
						orDash(d.Endpoint), d.Status, d.AttemptCount, intOrDash(d.LastStatusCode), time.Unix(d.CreatedAt, 0).UTC().Format(time.RFC3339))
				}
				return w.Flush()
			})
		}),
	}
	status.add(cmd, "status", "the deliveries' status")
	cmd.Flags().IntVar(&limit, "limit", 50, fmt.Sprintf("how many, newest first (1 to %d)", maxListLimit))
	return cmd
}

func (a *app) listEndpointsCommand() *cobra.Command {
	var failing bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list --failing [--limit N]",
		Short: "List the endpoints failing now or disabled by hookline, with their last error",
		Long: `List the endpoints of any merchant that are failing now or that hookline
disabled, most recently failing first, with their failed and pending counts
(stopping at 100+) and their last error. Merchants list their own endpoints
through the API.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if !failing {
				return usagef(cmd, "only --failing is listed here; merchants list their endpoints through the API")
			}
			if limit < 1 || limit > maxListLimit {
				return usagef(cmd, "--limit must be from 1 to %d, not %d", maxListLimit, limit)
			}
			return a.withOperator(cmd, func(pool *pgxpool.Pool, _ *delivery.Dispatcher) error {
				list, err := delivery.FailingEndpoints(cmd.Context(), pool, limit)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ENDPOINT\tMERCHANT\tSTATUS\tREASON\tFAILING SINCE\tFAILED\tPENDING\tLAST ERROR")
				for _, e := range list {
					since := "-"
					if e.FailingSince != nil {
						since = e.FailingSince.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.MerchantID, e.Status, orDash(e.DisabledReason),
						since, e.Failed(), e.Pending(), orDash(e.LastError))
				}
				return w.Flush()
			})
		}),
	}
	cmd.Flags().BoolVar(&failing, "failing", false, "the endpoints failing now or disabled by hookline")
	cmd.Flags().IntVar(&limit, "limit", 50, fmt.Sprintf("how many (1 to %d)", maxListLimit))
	return cmd
}

func (a *app) enableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "enable WE_ID",
		Short: "Turn an endpoint back on, clearing why hookline disabled it",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "expects one endpoint id (we_…), not %d arguments", len(args))
			}
			return nil
		},
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			return a.withOperator(cmd, func(pool *pgxpool.Pool, _ *delivery.Dispatcher) error {
				id := args[0]
				err := pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) error { return delivery.Enable(cmd.Context(), tx, id) })
				if errors.Is(err, events.ErrNotFound) {
					return fmt.Errorf("no such endpoint: %s", id)
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "{\"id\":%q,\"status\":\"enabled\"}\n", id)
				return err
			})
		}),
	}
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func intOrDash(n *int) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
