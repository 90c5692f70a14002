package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// The operator commands run against DATABASE_URL wherever hookline runs: they
// only write rows and enqueue jobs, which the serving processes then work.

func deliveriesCommand(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: hookline deliveries retry|recover|list …")
	}
	return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
		dispatcher, err := operatorDispatcher(pool, cfg)
		if err != nil {
			return err
		}
		switch args[0] {
		case "retry":
			return retryCommand(ctx, pool, dispatcher, args[1:], stdout)
		case "recover":
			return recoverCommand(ctx, pool, dispatcher, args[1:], stdout)
		case "list":
			return listDeliveriesCommand(ctx, pool, args[1:], stdout)
		default:
			return fmt.Errorf("unknown deliveries command %q: retry, recover or list", args[0])
		}
	})
}

// operatorDispatcher is a Dispatcher on an insert-only River client.
func operatorDispatcher(pool *pgxpool.Pool, cfg config) (*delivery.Dispatcher, error) {
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, fmt.Errorf("create river inserter: %w", err)
	}
	return delivery.NewDispatcher(inserter), nil
}

func retryCommand(ctx context.Context, pool *pgxpool.Pool, d *delivery.Dispatcher, ids []string, stdout io.Writer) error {
	if len(ids) == 0 {
		return errors.New("usage: hookline deliveries retry DLV_ID…")
	}
	out := struct {
		Retried  int      `json:"retried"`
		NotFound []string `json:"not_found,omitempty"`
	}{}
	for _, id := range ids {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return d.RetryByID(ctx, tx, id) })
		switch {
		case errors.Is(err, events.ErrNotFound):
			out.NotFound = append(out.NotFound, id)
		case err != nil:
			return err
		default:
			out.Retried++
		}
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return err
	}
	if len(out.NotFound) > 0 {
		return fmt.Errorf("no such delivery: %s", strings.Join(out.NotFound, ", "))
	}
	return nil
}

func recoverCommand(ctx context.Context, pool *pgxpool.Pool, d *delivery.Dispatcher, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deliveries recover", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "the endpoint (we_…) whose failed deliveries to retry")
	sinceFlag := fs.String("since", "", "start of the window: RFC 3339, or a duration meaning that long ago (6h)")
	untilFlag := fs.String("until", "", "end of the window, as --since (default: now)")
	dryRun := fs.Bool("dry-run", false, "count the deliveries without retrying them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *endpoint == "" || *sinceFlag == "" {
		return errors.New("usage: hookline deliveries recover --endpoint WE_ID --since WHEN [--until WHEN] [--dry-run]")
	}
	now := time.Now()
	since, err := delivery.ParseWhen(*sinceFlag, now)
	if err != nil {
		return fmt.Errorf("--since %w", err)
	}
	until := now
	if *untilFlag != "" {
		if until, err = delivery.ParseWhen(*untilFlag, now); err != nil {
			return fmt.Errorf("--until %w", err)
		}
	}
	var r *delivery.Recovery
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		r, err = d.Recover(ctx, tx, nil, *endpoint, since, until, *dryRun)
		return err
	})
	var invalid *events.InvalidError
	var state *events.StateError
	switch {
	case errors.As(err, &invalid):
		return fmt.Errorf("--%s %s", invalid.Param, invalid.Message)
	case errors.As(err, &state):
		return errors.New(state.Message)
	case errors.Is(err, events.ErrNotFound):
		return fmt.Errorf("no such endpoint: %s", *endpoint)
	case err != nil:
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

func listDeliveriesCommand(ctx context.Context, pool *pgxpool.Pool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deliveries list", flag.ContinueOnError)
	status := fs.String("status", "failed", "pending, succeeded, failed, or all")
	limit := fs.Int("limit", 50, "how many, newest first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *status == "all" {
		*status = ""
	}
	list, err := delivery.RecentDeliveries(ctx, pool, *status, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DELIVERY\tMERCHANT\tEVENT\tTYPE\tENDPOINT\tSTATUS\tATTEMPTS\tLAST CODE\tCREATED")
	for _, d := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.MerchantID, d.Event, d.EventType,
			orDash(d.Endpoint), d.Status, d.AttemptCount, intOrDash(d.LastStatusCode), time.Unix(d.CreatedAt, 0).UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func endpointsCommand(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: hookline endpoints list --failing | enable WE_ID")
	}
	return withPool(ctx, cfg, func(pool *pgxpool.Pool) error {
		switch args[0] {
		case "list":
			fs := flag.NewFlagSet("endpoints list", flag.ContinueOnError)
			failing := fs.Bool("failing", false, "the endpoints failing now or disabled by hookline")
			limit := fs.Int("limit", 50, "how many")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			if !*failing {
				return errors.New("only --failing is listed here; merchants list their endpoints through the API")
			}
			list, err := delivery.FailingEndpoints(ctx, pool, *limit)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
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
		case "enable":
			if len(args) != 2 {
				return errors.New("usage: hookline endpoints enable WE_ID")
			}
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return delivery.Enable(ctx, tx, args[1]) })
			if errors.Is(err, events.ErrNotFound) {
				return fmt.Errorf("no such endpoint: %s", args[1])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "{\"id\":%q,\"status\":\"enabled\"}\n", args[1])
			return nil
		default:
			return fmt.Errorf("unknown endpoints command %q: list or enable", args[0])
		}
	})
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
