package stream_test

import (
	"os"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestMain runs the package's tests, then fails the run if a SQL statement of
// the package has no plan test (dbtest.RunWithPlanCoverage).
func TestMain(m *testing.M) {
	os.Exit(dbtest.RunWithPlanCoverage(m, nil))
}
