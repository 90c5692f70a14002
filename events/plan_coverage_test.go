package events_test

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

// planExemptions are the package's statements that need no plan test, each
// with the reason a reviewer accepted. A statement that reads a range of rows
// gets a plan test instead.
var planExemptions = []dbtest.Exemption{
	{SQL: `select id, webhook_secret, test_webhook_secret from merchants for update`,
		Why: "hookline reencrypt (an operator's one-off after a key rotation) reads every merchant by design"},
	{SQL: `update merchants set webhook_secret = $2, test_webhook_secret = $3 where id = $1`,
		Why: "hookline reencrypt: one merchant by primary key"},
	{SQL: `select pg_current_xact_id()::text`, Why: "reads no table: the checkout batch's transaction id"},
	{SQL: `select pg_xact_status($1::xid8)`, Why: "reads no table: a lost commit's outcome"},
}
