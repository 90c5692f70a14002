package delivery

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// takeTokens is a token bucket for an endpoint's rate_limit ($2 deliveries
// per second), kept in its destination's row: it refills at $2 a second up
// to $2 (a second's worth: a receiver that asked for 50 a second gets at
// most 50 at once), and grants up to $3 tokens, as many as it holds. The
// row's lock makes every worker process take from the one bucket in turn,
// so the limit holds across processes, with no server but Postgres. A row
// made by another path (a pause, a release) starts with a full bucket.
// now() is when the taker's statement began, which may be before the time
// the previous taker wrote: the refill never counts negative time, and the
// bucket's clock never goes back (which would count an interval twice).
const takeTokens = `with b as (
		select key, least($2::float8, coalesce(tokens, $2) + greatest(0, extract(epoch from now() - coalesce(tokens_at, now()))) * $2) as tokens
		from delivery_destinations where key = $1 for update
	), g as (
		select key, tokens, greatest(0, least($3, floor(tokens)))::int as granted from b
	)
	update delivery_destinations s set tokens = g.tokens - g.granted, tokens_at = greatest(s.tokens_at, now())
	from g where s.key = g.key
	returning g.granted`

// startBucket makes the destination's row with a full bucket less what it
// grants, when the destination has none yet.
const startBucket = `insert into delivery_destinations (key, tokens, tokens_at) values ($1, $2::float8 - least($3, $2), now())
	on conflict (key) do nothing
	returning least($3, $2)::int`

// take answers how many of n deliveries may go to destination now, under its
// rate limit of perSecond. The deliveries refused wait, parked, for the
// release, which hands out a second's worth at a time (see release).
func take(ctx context.Context, db events.DB, destination string, perSecond, n int) (int, error) {
	for {
		var granted int
		err := db.QueryRow(ctx, takeTokens, destination, perSecond, n).Scan(&granted)
		if err == nil {
			return granted, nil // at most n, never negative: the statement's greatest and least
		}
		if err != pgx.ErrNoRows {
			return 0, fmt.Errorf("take rate limit tokens: %w", err)
		}
		err = db.QueryRow(ctx, startBucket, destination, perSecond, n).Scan(&granted)
		if err == nil {
			return granted, nil // least(n, perSecond): perSecond is 1..10,000 (the column's check)
		}
		if err != pgx.ErrNoRows {
			return 0, fmt.Errorf("start rate limit bucket: %w", err)
		}
		// Another process made the row meanwhile: take from it.
	}
}
