package dbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
)

// HotTables are the tables that grow with the history: a sequential scan of
// one costs in proportion to everything ever written.
var HotTables = []string{"checkouts", "payment_attempts", "events", "deliveries", "delivery_attempts",
	"idempotency_keys", "webhook_endpoints", "river_job"}

// MaxFilteredPerRow is how many rows a plan may read and throw away for each
// row it returns (or, returning none, in all) before it counts as reading
// the history rather than the page; by default, also how many it may read.
const MaxFilteredPerRow = 10

// Want is what CheckPlans requires of a plan besides its fixed rules.
type Want struct {
	// Conds are regular expressions that some Index Cond (or Recheck Cond)
	// of the plan must match, such as `\(merchant_id = \$3\)` or
	// `\(id < \$1\)`: the merchant, the filters and the cursor narrow the
	// index range, not the rows read from it.
	Conds []string
	// MaxRead bounds the rows the plan's scans read, kept or thrown away.
	// Zero means MaxFilteredPerRow for each row returned; a statement that
	// reads a bounded number of rows for each it returns (a capped count)
	// states its bound.
	MaxRead float64
}

// PlanNode is one node of EXPLAIN (ANALYZE, FORMAT JSON)'s plan, with the
// fields the checks read.
type PlanNode struct {
	NodeType                  string     `json:"Node Type"`
	RelationName              string     `json:"Relation Name"`
	IndexName                 string     `json:"Index Name"`
	IndexCond                 string     `json:"Index Cond"`
	RecheckCond               string     `json:"Recheck Cond"`
	Filter                    string     `json:"Filter"`
	ActualRows                float64    `json:"Actual Rows"`
	ActualLoops               float64    `json:"Actual Loops"`
	RowsRemovedByFilter       float64    `json:"Rows Removed by Filter"`
	RowsRemovedByJoinFilter   float64    `json:"Rows Removed by Join Filter"`
	RowsRemovedByIndexRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans                     []PlanNode `json:"Plans"`
}

// walk calls f on the node and every node below it.
func (n *PlanNode) walk(f func(*PlanNode)) {
	f(n)
	for i := range n.Plans {
		n.Plans[i].walk(f)
	}
}

// Plan is one statement's executed generic plan.
type Plan struct {
	SQL           string
	Root          PlanNode `json:"Plan"`
	ExecutionTime float64  `json:"Execution Time"`
	// Returned is how many rows the statement returned, Read how many rows
	// its scans read, Removed how many of those its nodes threw away
	// (filters, join filters, rechecks).
	Returned, Read, Removed float64
}

// recorder is a pgx tracer that keeps every statement its connection runs.
type recorder struct {
	mu    sync.Mutex
	stmts []pgx.TraceQueryStartData
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, d)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// CheckPlans runs fn in a transaction it rolls back, against pool's database
// on a connection with settings
// (the session settings of hookline's pools, delivery.PlannerSettings), then
// runs each statement fn ran again, with the same arguments, as a generic
// plan (PREPARE, then EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE under
// plan_cache_mode=force_generic_plan, as hookline's connections plan), on the
// rows that statement first saw: fn's earlier statements are run again before
// it and its later ones are not, so that an insert is explained without
// meeting its own row, and a statement that reads what fn changed sees it. It
// fails tb unless each plan:
//
//   - has an index condition matching each of want.Conds;
//   - throws away at most MaxFilteredPerRow rows per row returned, and reads
//     at most want.MaxRead rows;
//   - scans no HotTables sequentially;
//   - starts no parallel workers (a Gather): starting them costs more than
//     reading a page.
//
// It returns the plans, for their timings. Each statement a function runs
// gets a plan test by one call of this, on the Seeded history.
func CheckPlans(tb testing.TB, pool *pgxpool.Pool, settings map[string]string, fn func(ctx context.Context, db events.DB) error, want Want) []Plan {
	tb.Helper()
	ctx := context.Background()
	cfg := pool.Config().ConnConfig.Copy()
	rec := &recorder{}
	cfg.Tracer = rec
	for name, value := range settings {
		cfg.RuntimeParams[name] = value
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	// One transaction, rolled back, so that the seeded history stays as it
	// was; within it, savepoints take each statement back to the rows it saw.
	tx, err := conn.Begin(ctx)
	if err != nil {
		tb.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "savepoint plan_check_before"); err != nil {
		tb.Fatal(err)
	}
	rec.mu.Lock()
	rec.stmts = nil // not the begin
	rec.mu.Unlock()
	if err := fn(ctx, tx); err != nil {
		tb.Fatalf("run statements: %v", err)
	}
	rec.mu.Lock()
	run := slices.Clone(rec.stmts)
	rec.mu.Unlock()
	if len(run) == 0 {
		tb.Fatal("the function ran no statement")
	}
	if _, err := tx.Exec(ctx, "rollback to savepoint plan_check_before"); err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "set local plan_cache_mode = force_generic_plan"); err != nil {
		tb.Fatal(err)
	}
	var plans []Plan
	for i, st := range run {
		if !statementStart.MatchString(st.SQL) {
			continue // a setting (set local …) has no plan; it is run again for those after it
		}
		if _, err := tx.Exec(ctx, "savepoint plan_check_statement"); err != nil {
			tb.Fatal(err)
		}
		for _, earlier := range run[:i] {
			if _, err := tx.Exec(ctx, earlier.SQL, earlier.Args...); err != nil {
				tb.Fatalf("run again %s: %v", earlier.SQL, err)
			}
		}
		name := fmt.Sprintf("plan_check_%d", i)
		if _, err := tx.Exec(ctx, "prepare "+name+" as "+st.SQL); err != nil {
			tb.Fatalf("prepare %s: %v", st.SQL, err)
		}
		// EXPLAIN takes no bind parameters: the arguments become literals of
		// the prepared statement's parameter types.
		var types []string
		if err := tx.QueryRow(ctx, `select parameter_types::text[] from pg_prepared_statements where name = $1`, name).
			Scan(&types); err != nil {
			tb.Fatalf("read parameter types: %v", err)
		}
		if len(types) != len(st.Args) {
			tb.Fatalf("%d arguments for %d parameters: %s", len(st.Args), len(types), st.SQL)
		}
		literals := make([]string, len(st.Args))
		for j, arg := range st.Args {
			var lit string
			if err := tx.QueryRow(ctx, "select quote_nullable($1::"+types[j]+")", arg).Scan(&lit); err != nil {
				tb.Fatalf("quote argument %d: %v", j+1, err)
			}
			literals[j] = lit + "::" + types[j]
		}
		q := "explain (analyze, format json) execute " + name
		if len(literals) > 0 {
			q += "(" + strings.Join(literals, ", ") + ")"
		}
		var out []byte
		if err := tx.QueryRow(ctx, q).Scan(&out); err != nil {
			tb.Fatalf("explain %s: %v", st.SQL, err)
		}
		var explained []Plan
		if err := json.Unmarshal(out, &explained); err != nil || len(explained) != 1 {
			tb.Fatalf("read plan: %v: %s", err, out)
		}
		p := explained[0]
		p.SQL = st.SQL
		recordChecked(st.SQL)
		checkPlan(tb, &p, out, want)
		plans = append(plans, p)
		if _, err := tx.Exec(ctx, "rollback to savepoint plan_check_statement"); err != nil {
			tb.Fatal(err)
		}
	}
	return plans
}

// checkPlan applies CheckPlans' rules to one plan; raw is its JSON, shown
// when a rule fails.
func checkPlan(tb testing.TB, p *Plan, raw []byte, want Want) {
	tb.Helper()
	var indexConds []string
	p.Returned = p.Root.ActualRows * max(p.Root.ActualLoops, 1)
	p.Root.walk(func(n *PlanNode) {
		removed := (n.RowsRemovedByFilter + n.RowsRemovedByJoinFilter + n.RowsRemovedByIndexRecheck) * max(n.ActualLoops, 1)
		p.Removed += removed
		// A bitmap index scan names no relation, and what it reads is not
		// counted by the heap scan above it when another bitmap is ANDed
		// with it.
		if n.RelationName != "" || n.NodeType == "Bitmap Index Scan" {
			p.Read += n.ActualRows*max(n.ActualLoops, 1) + removed
		}
		if n.IndexCond != "" {
			indexConds = append(indexConds, n.IndexCond)
		}
		if n.RecheckCond != "" {
			indexConds = append(indexConds, n.RecheckCond)
		}
		if strings.HasPrefix(n.NodeType, "Gather") {
			tb.Errorf("starts parallel workers (%s):\n%s\n%s", n.NodeType, p.SQL, raw)
		}
		for _, t := range HotTables {
			if n.NodeType == "Seq Scan" && n.RelationName == t {
				tb.Errorf("scans %s sequentially:\n%s\n%s", t, p.SQL, raw)
			}
		}
	})
	for _, c := range want.Conds {
		re := regexp.MustCompile(c)
		found := false
		for _, ic := range indexConds {
			found = found || re.MatchString(ic)
		}
		if !found {
			tb.Errorf("no index condition matches %s (index conditions: %q):\n%s\n%s", c, indexConds, p.SQL, raw)
		}
	}
	if p.Removed > MaxFilteredPerRow*max(p.Returned, 1) {
		tb.Errorf("reads and throws away %.0f rows to return %.0f:\n%s\n%s", p.Removed, p.Returned, p.SQL, raw)
	}
	maxRead := want.MaxRead
	if maxRead == 0 {
		maxRead = MaxFilteredPerRow * max(p.Returned, 1)
	}
	if p.Read > maxRead {
		tb.Errorf("reads %.0f rows to return %.0f (at most %.0f):\n%s\n%s", p.Read, p.Returned, maxRead, p.SQL, raw)
	}
}

// PageShape is one way a list is read, with the index condition its cursor
// must be: the first page, or the page after or before a cursor.
type PageShape struct {
	Name   string
	Page   events.Page
	Cursor []string
}

// PageShapes returns the first page and the pages of 10 after and before
// cursor (an id deep in the history), each as a list's plan test reads it.
func PageShapes(cursor string) []PageShape {
	return []PageShape{
		{"first", events.Page{Limit: 10}, nil},
		{"starting_after", events.Page{Limit: 10, StartingAfter: cursor}, []string{`\(id < \$1\)`}},
		{"ending_before", events.Page{Limit: 10, EndingBefore: cursor}, []string{`\(id > \$1\)`}},
	}
}

// LogPlans logs what each plan cost, for a reader of `go test -v`.
func LogPlans(tb testing.TB, plans []Plan) {
	tb.Helper()
	for _, p := range plans {
		tb.Logf("%.3f ms, %.0f rows returned, %.0f read, %.0f thrown away", p.ExecutionTime, p.Returned, p.Read, p.Removed)
	}
}

// IndexConds returns the index conditions (and recheck conditions) of a
// plan, for a test whose function runs set-up statements besides those it
// checks, which Want.Conds would hold to the same conditions.
func (p *Plan) IndexConds() []string {
	var conds []string
	p.Root.walk(func(n *PlanNode) {
		for _, c := range []string{n.IndexCond, n.RecheckCond} {
			if c != "" {
				conds = append(conds, c)
			}
		}
	})
	return conds
}
