package delivery_test

import (
	"os"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestMain runs the package's tests, then fails the run if a SQL statement of
// the package has no plan test (dbtest.RunWithPlanCoverage).
func TestMain(m *testing.M) {
	os.Exit(dbtest.RunWithPlanCoverage(m, planExemptions))
}

// recoveryRewrite is why recover.go's statements have no plan test yet.
const recoveryRewrite = "plan test comes with the recovery rewrite (lead)"

// planExemptions are the package's statements that need no plan test, each
// with the reason a reviewer accepted. A statement that reads a range of rows
// gets a plan test instead.
var planExemptions = []dbtest.Exemption{
	{SQL: `select id, secret, previous_secret from webhook_endpoints for update`,
		Why: "hookline reencrypt (an operator's one-off after a key rotation) reads every endpoint by design"},
	{SQL: `update webhook_endpoints set secret = $2, previous_secret = $3 where id = $1`,
		Why: "hookline reencrypt: one endpoint by primary key"},
	{SQL: `insert into delivery_destinations as s (key) values ($1) on conflict (key) do update set key = s.key
		returning busy_at, released_at, release_size, probe_ms,
		coalesce((select failing_since < now() - $2::interval from webhook_endpoints where id = $1), false)`,
		Why: "one destination by primary key, and its endpoint by primary key"},
	{SQL: `update delivery_destinations set released_at = now(), paused_until = now() + $2::interval, probe_ms = $3,
		release_size = coalesce(nullif($4, 0), release_size) where key = $1`,
		Why: "one destination by primary key"},
	{SQL: `delete from delivery_attempts where delivery_id = any($1)`,
		Why: "the attempts of the batch prunableDeliveries chose (its plan test), by primary key"},
	{SQL: `delete from deliveries where id = any($1)`,
		Why: "the batch prunableDeliveries chose (its plan test), by primary key"},
	{SQL: `update deliveries set status = 'failed', next_attempt_at = null, parked = false, updated_at = now()
		where id = any($1) and status = 'pending'`,
		Why: "a job's own deliveries, by primary key"},
	{SQL: `select status from webhook_endpoints where id = $1 and deleted_at is null
		and ($2::text is null or (merchant_id = $2 and livemode = $3))`, Why: recoveryRewrite},
	{SQL: `select count(*) from deliveries where endpoint_id = $1 and status = 'failed'
		and created_at >= $2 and created_at < $3`, Why: recoveryRewrite},
	{SQL: `update deliveries set status = 'pending', next_attempt_at = now(), schedule_base = attempt_count, updated_at = now()
		where id in (select id from deliveries where endpoint_id = $1 and status = 'failed'
			and created_at >= $2 and created_at < $3 and id > $4 order by id limit $5 for update skip locked)
		returning id, attempt_count`, Why: recoveryRewrite},
}
