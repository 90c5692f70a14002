package delivery_test

import (
	"os"
	"testing"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestMain runs the package's tests, then fails the run if a SQL statement of
// the package has no plan test (dbtest.RunWithPlanCoverage).
func TestMain(m *testing.M) {
	os.Exit(dbtest.RunWithPlanCoverage(m, planExemptions))
}

var planExemptions = []dbtest.Exemption{
	{SQL: `select id, secret, previous_secrets, header_authorization from webhook_endpoints for update`,
		Why: "hookline reencrypt (an operator's one-off after a key rotation) reads every endpoint by design"},
	{SQL: `update webhook_endpoints set secret = $2, previous_secrets = $3, header_authorization = $4 where id = $1`,
		Why: "hookline reencrypt: one endpoint by primary key"},
	{SQL: `select header_authorization from webhook_endpoints where id = $1 for update`,
		Why: "one endpoint by primary key (an update of its headers)"},
	{SQL: `update webhook_endpoints set headers = $2, header_authorization = $3 where id = $1`,
		Why: "one endpoint by primary key"},
	{SQL: `insert into delivery_destinations as s (key) values ($1) on conflict (key) do update set key = s.key
		returning busy_at, released_at, release_size, probe_ms,
		coalesce((select failing_since < now() - $2::interval from webhook_endpoints where id = $1), false),
		(select rate_limit from webhook_endpoints where id = $1),
		coalesce(extract(epoch from now() - released_at)::float8, 1)`,
		Why: "one destination by primary key, and its endpoint by primary key"},
	{SQL: `update delivery_destinations set released_at = now(), paused_until = now() + $2::interval, probe_ms = $3,
		release_size = coalesce(nullif($4, 0), release_size) where key = $1`,
		Why: "one destination by primary key"},
	{SQL: delivery.TakeTokensSQL, Why: "one destination's bucket by primary key"},
	{SQL: delivery.StartBucketSQL, Why: "one destination's bucket by primary key"},
	{SQL: `select w.id, w.url, coalesce(s.paused_until > now(), false), w.status <> 'enabled' from webhook_endpoints w
		left join delivery_destinations s on s.key = w.id where w.id = any($1) and w.deleted_at is null`,
		Why: "the endpoints an event is addressed to (a test event's one), by primary key"},
	{SQL: `select merchant_id, livemode from webhook_endpoints where id = $1 and deleted_at is null`,
		Why: "one endpoint by primary key (the operator's endpoint page)"},
	{SQL: `select true from webhook_endpoints where id = $1 and merchant_id = $2 and livemode = $3 and deleted_at is null for share`,
		Why: "one endpoint by primary key"},
	{SQL: `select id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code, next_attempt_at, created_at
		from deliveries where event_id = $1`,
		Why: "a test event's one delivery, through (event_id, id)"},
	{SQL: delivery.ReconcileSettingsSQL, Why: "a setting, which has no plan"},
	{SQL: `delete from delivery_attempts where delivery_id = any($1)`,
		Why: "the attempts of the batch prunableDeliveries chose (its plan test), by primary key"},
	{SQL: `delete from deliveries where id = any($1)`,
		Why: "the batch prunableDeliveries chose (its plan test), by primary key"},
	{SQL: `update deliveries set status = 'failed', next_attempt_at = null, parked = false, updated_at = now()
		where id = any($1) and (status = 'pending') is true`,
		Why: "a job's own deliveries, by primary key"},
}
