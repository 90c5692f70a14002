package delivery

// PlannerSettings are the session settings of hookline's database
// connections (cmd/hookline sets them on every pool, unless DATABASE_URL sets
// them).
//
// hookline's and River's hot statements are prepared once per connection and
// take arrays (a job's deliveries, a batch of jobs). Postgres plans such a
// statement afresh on every execution by default, because its generic plan's
// guess of an array's length looks costlier than a custom plan; planning then
// cost more than executing (0.28 ms against 0.09 ms for recording a job's
// attempts, measured on a warm connection), hence force_generic_plan: the
// backlog drain of make bench went from about 3,000 to 4,200 deliveries/s.
//
// A generic plan is kept until the statistics of its tables change, and a
// young table's change only every autovacuum round (a minute): plans made
// while deliveries, events and river_job were small scanned them whole, and
// kept doing so as they grew, each job costing more than the last (make
// bench's burst and steady start on an empty schema: 5.7 ms to record a job's
// attempts). hookline's and River's statements on these connections are all
// meant to use an index, so enable_seqscan=off only keeps them there: burst 2,100 -> 3,300-3,600
// deliveries/s, and steady kept up with 1,000 checkouts/s. (A statement with
// no index to use still scans; the setting only prices a scan as a last
// resort.) TestHotStatementsUseIndexesOnAFreshSchema checks the hot plans.
//
// enable_bitmapscan=off keeps a generic plan from reading a whole skewed
// range to return its first rows. A generic plan guesses that one
// destination has its average share of the parked deliveries (a few), and a
// bitmap scan plus a sort of a few rows looks cheapest; but one busy
// destination may have parked 100,000, and claiming 50 of them then read and
// sorted all 100,000 on every claim (3,037 rows read for 50 in
// TestBackgroundStatementPlansAtScale, 200 with the setting). An index scan
// reads the range in order and stops at the LIMIT. No statement of hookline's
// or River's needs a bitmap scan (none combines indexes), but for the
// reconciler's, which read River's GIN index on job args and turn bitmap
// scans back on for their transaction (reconcileSettings); the plan tests at
// scale check every list and background statement with the settings it
// runs under.
//
// max_parallel_workers_per_gather=0 keeps a page from starting worker
// processes. A generic plan cannot see a `limit $1`'s value and guesses a
// tenth of the rows, so the operator's lists of the newest deliveries (of any
// status, or succeeded) were planned as a parallel scan of the primary key
// that returns its 100 rows after starting two workers: 17 to 38 ms against
// 0.9 and 1.3 ms without them in TestStatementPlansAtScale, and 35 ms (p50)
// through the API at 200,000 deliveries in make bench's history scenario. Every
// statement of hookline's reads a page or a bounded set (the plan tests
// check that), which a worker only delays.
//
// jit=off, because enable_seqscan=off prices a scan that has to happen at
// Postgres's disable cost (10^10, up to Postgres 17),
// far past jit_above_cost: a statement with
// no index to use was compiled to machine code on every execution. River's
// leader re-election (an update of river_leader, a table of one row, by
// columns it has no index on) took 200 to 450 ms of CPU every few seconds
// that way, all of it compilation: 1.4 s of the 18 s single drain of make
// bench (pg_stat_statements' jit columns), about 4 % of the 2 cores. No
// statement of hookline's runs long enough to gain from compiling it.
// TestSeqScanIsNotCompiled checks it.
func PlannerSettings() map[string]string {
	return map[string]string{"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "enable_bitmapscan": "off",
		"max_parallel_workers_per_gather": "0", "jit": "off"}
}
