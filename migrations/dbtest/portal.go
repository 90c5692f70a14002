package dbtest

import (
	"context"
	"fmt"

	"github.com/hookline/hookline/events"
)

// SeedPortalSessions writes n merchant portal sessions spread over the
// seeded merchants into tx (a plan test's transaction on the Seeded
// history, which rolls them back), so that the portal's statements are
// planned on a table of realistic size: a third not yet exchanged, the
// rest exchanged. Their ids sort below every real id (all zeros but the
// count), as sessions minted long ago, and their token's and session's
// hashes are sha256('token <n>') and sha256('session <n>'). Plan tests
// check its insert with dbtest.Want{} and the portal's statements with
// IndexConds.
func SeedPortalSessions(ctx context.Context, tx events.DB, n int) error {
	_, err := tx.Exec(ctx, `insert into portal_sessions (id, merchant_id, livemode, token_hash, session_hash, used_at, expires_at)
		select 'ps_' || lpad(g::text, 26, '0'), 'acct_seed' || lpad((g % 1001)::text, 4, '0'), g % 2 = 0,
			sha256(('token ' || g)::bytea),
			case when g % 3 = 0 then null else sha256(('session ' || g)::bytea) end,
			case when g % 3 = 0 then null else now() end,
			now() + interval '1 hour' - g * interval '1 second'
		from generate_series(1, $1::int) g`, n)
	if err != nil {
		return fmt.Errorf("seed portal sessions: %w", err)
	}
	// The statistics autovacuum would gather on a table of this size.
	if _, err := tx.Exec(ctx, `analyze portal_sessions`); err != nil {
		return fmt.Errorf("analyze portal sessions: %w", err)
	}
	return nil
}
