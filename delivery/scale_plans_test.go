package delivery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestStatementPlansAtScale checks the generic plan of every list of this
// package (deliveries, endpoints) and operator view on a production-sized history (dbtest.Seeded: 1 M
// deliveries, 200 k events, 80 % of them one merchant's), with every filter,
// on the first page and deep in the history in both directions: merchant,
// filter and cursor are index conditions, nothing reads more than ten rows
// for each it returns, and no history table is scanned (dbtest.CheckPlans).
func TestStatementPlansAtScale(t *testing.T) {
	start := time.Now()
	pool := dbtest.Seeded(t)
	t.Logf("seed ready in %v", time.Since(start).Round(time.Millisecond))
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	small := events.Scope{MerchantID: dbtest.SeedSmallMerchant}
	bigEvent := dbtest.SeedID("evt", 1)
	smallEndpoint := "we_seed0007_2"

	type list struct {
		name  string
		run   func(ctx context.Context, db events.DB, page events.Page) error
		conds []string
	}
	deliveries := func(scope events.Scope, f DeliveryFilter) func(context.Context, events.DB, events.Page) error {
		return func(ctx context.Context, db events.DB, page events.Page) error {
			_, err := ListDeliveries(ctx, db, scope, f, page)
			return err
		}
	}
	merchantStatus := []string{`\(merchant_id = \$3\) AND \(livemode = \$4\) AND \(status = s\.each_status\)`}
	var lists []list
	for _, s := range []struct {
		name  string
		scope events.Scope
	}{{"large merchant", big}, {"small merchant", small}} {
		lists = append(lists,
			list{s.name + " deliveries", deliveries(s.scope, DeliveryFilter{}), merchantStatus},
			list{s.name + " webhook endpoints", func(ctx context.Context, db events.DB, page events.Page) error {
				_, err := List(ctx, db, s.scope, page)
				return err
			}, []string{`\(merchant_id = \$3\)`}},
		)
		for _, status := range []string{StatusPending, StatusSucceeded, StatusFailed} {
			lists = append(lists, list{s.name + " deliveries " + status,
				deliveries(s.scope, DeliveryFilter{Status: status}), []string{`\(merchant_id = \$3\) AND \(livemode = \$4\) AND \(status = \$5\)`}})
		}
	}
	busy := dbtest.SeedBusyEndpoint
	lists = append(lists,
		list{"deliveries of a busy endpoint", deliveries(big, DeliveryFilter{EndpointID: busy}),
			[]string{`\(endpoint_id = \$3\) AND \(status = s\.each_status\)`, `\(id = \$3\)`}},
		list{"failed deliveries of a busy endpoint", deliveries(big, DeliveryFilter{EndpointID: busy, Status: StatusFailed}),
			[]string{`\(endpoint_id = \$3\) AND \(status = \$6\)`, `\(id = \$3\)`}},
		list{"pending deliveries of a busy endpoint", deliveries(big, DeliveryFilter{EndpointID: busy, Status: StatusPending}),
			[]string{`\(endpoint_id = \$3\) AND \(status = \$6\)`, `\(id = \$3\)`}},
		list{"deliveries of another merchant's endpoint", deliveries(big, DeliveryFilter{EndpointID: smallEndpoint}), nil},
		list{"deliveries of an event", deliveries(big, DeliveryFilter{EventID: bigEvent}), []string{`\(event_id = \$3\)`, `\(id = \$3\)`}},
		list{"deliveries of an event to an endpoint", deliveries(big, DeliveryFilter{EventID: bigEvent, EndpointID: busy}),
			[]string{`\(event_id = \$3\)`, `\(id = \$3\)`}},
		list{"failed deliveries of an event", deliveries(big, DeliveryFilter{EventID: bigEvent, Status: StatusFailed}),
			[]string{`\(event_id = \$3\)`, `\(id = \$3\)`}},
		list{"failed deliveries of an event to an endpoint",
			deliveries(big, DeliveryFilter{EventID: bigEvent, EndpointID: busy, Status: StatusFailed}), []string{`\(event_id = \$3\)`, `\(id = \$3\)`}},
	)
	for _, l := range lists {
		// A cursor halfway down the history; endpoints, a handful per
		// merchant, from the middle of the large merchant's.
		cursor := dbtest.SeedID("dlv", dbtest.SeedDeliveries/2)
		if strings.Contains(l.name, "endpoints") {
			cursor = "we_seed0000_3"
		}
		for _, p := range dbtest.PageShapes(cursor) {
			t.Run(l.name+"/"+p.Name, func(t *testing.T) {
				conds := append(append([]string{}, l.conds...), p.Cursor...)
				plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
					return l.run(ctx, db, p.Page)
				}, dbtest.Want{Conds: conds})
				dbtest.LogPlans(t, plans)
			})
		}
	}

	// The failing-endpoints view reads, for each endpoint it shows, up to
	// failingCountCap deliveries of each count and lastErrorWindow deliveries (and
	// their last attempts) of each of two statuses.
	failingRead := float64(100 * (1 + 2*failingCountCap + 4*lastErrorWindow))
	for _, v := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"failing endpoints", func(ctx context.Context, db events.DB) error {
			list, err := FailingEndpoints(ctx, db, 100)
			capped := false
			for _, f := range list {
				if f.FailedCount > failingCountCap || f.PendingCount > failingCountCap {
					t.Errorf("%s: counts %d failed, %d pending, past the cap of %d", f.ID, f.FailedCount, f.PendingCount, failingCountCap)
				}
				capped = capped || f.FailedCount == failingCountCap
			}
			if err == nil && !capped {
				t.Errorf("no endpoint's failed count reached the cap of %d: the seed's busy endpoint has more", failingCountCap)
			}
			return err
		}, dbtest.Want{Conds: []string{`\(endpoint_id = w\.id\) AND \(status = \$4\)`, `\(endpoint_id = w\.id\) AND \(status = \$5\)`, `\(delivery_id = d(_\d+)?\.id\)`}, MaxRead: failingRead}},
		{"recent failed deliveries", func(ctx context.Context, db events.DB) error {
			_, err := RecentDeliveries(ctx, db, StatusFailed, 100)
			return err
		}, dbtest.Want{Conds: []string{`\(status = \$2\)`, `\(id = d\.event_id\)`}}},
		{"recent pending deliveries", func(ctx context.Context, db events.DB) error {
			_, err := RecentDeliveries(ctx, db, StatusPending, 100)
			return err
		}, dbtest.Want{Conds: []string{`\(status = \$2\)`}}},
		{"recent succeeded deliveries", func(ctx context.Context, db events.DB) error {
			_, err := RecentDeliveries(ctx, db, StatusSucceeded, 100)
			return err
		}, dbtest.Want{Conds: []string{`\(id = d\.event_id\)`}}},
		{"recent deliveries", func(ctx context.Context, db events.DB) error {
			_, err := RecentDeliveries(ctx, db, "", 100)
			return err
		}, dbtest.Want{Conds: []string{`\(id = d\.event_id\)`}}},
	} {
		t.Run(v.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), v.run, v.want))
		})
	}
}

// TestListDeliveriesPagesAtScale checks that every filter shape of
// ListDeliveries, merged lists included, returns the page, in order, and the
// has_more of a plain query over the seeded history.
func TestListDeliveriesPagesAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	ctx := context.Background()
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	mid := dbtest.SeedID("dlv", dbtest.SeedDeliveries/2)
	for _, f := range []DeliveryFilter{
		{}, {Status: StatusFailed}, {Status: StatusPending}, {EndpointID: dbtest.SeedBusyEndpoint},
		{EndpointID: dbtest.SeedBusyEndpoint, Status: StatusPending}, {EventID: dbtest.SeedID("evt", 1)},
		{EventID: dbtest.SeedID("evt", 1), EndpointID: dbtest.SeedBusyEndpoint},
		{EventID: dbtest.SeedID("evt", 1), Status: StatusSucceeded},
		{EventID: dbtest.SeedID("evt", 1), EndpointID: dbtest.SeedBusyEndpoint, Status: StatusSucceeded},
		{EndpointID: "we_seed0007_2"},
	} {
		for _, page := range []events.Page{{Limit: 10}, {Limit: 10, StartingAfter: mid}, {Limit: 10, EndingBefore: mid},
			{Limit: 3, EndingBefore: dbtest.SeedID("dlv", 4)}} {
			t.Run(fmt.Sprintf("%+v/%+v", f, page), func(t *testing.T) {
				got, err := ListDeliveries(ctx, pool, big, f, page)
				if err != nil {
					t.Fatal(err)
				}
				order, cursor := "desc", page.StartingAfter
				if page.EndingBefore != "" {
					order, cursor = "asc", page.EndingBefore
				}
				rows, err := pool.Query(ctx, `select id from deliveries where merchant_id = $1 and livemode = false
					and ($2 = '' or event_id = $2) and ($3 = '' or endpoint_id = $3) and ($4 = '' or status = $4)
					and ($5 = '' or ($6 = 'desc' and id < $5) or ($6 = 'asc' and id > $5))
					order by case when $6 = 'desc' then id end desc, id asc limit $7`,
					big.MerchantID, f.EventID, f.EndpointID, f.Status, cursor, order, page.Limit+1)
				if err != nil {
					t.Fatal(err)
				}
				want, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				wantMore := len(want) > page.Limit
				if wantMore {
					want = want[:page.Limit]
				}
				if order == "asc" {
					slices.Reverse(want)
				}
				var ids []string
				for _, d := range got.Data {
					ids = append(ids, d.ID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(want) || got.HasMore != wantMore {
					t.Errorf("got %v has_more %v, want %v has_more %v", ids, got.HasMore, want, wantMore)
				}
			})
		}
	}
}

// errorRecorder is a test whose Errorf is recorded instead of failing it.
type errorRecorder struct {
	*testing.T
	errors []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestCheckPlansRefusesHistoryScans shows that dbtest.CheckPlans fails the
// shapes this package replaced: an optional filter and an optional cursor
// written as `($n = ” or …)`, which a generic plan reads as row filters, and
// a UNION ALL of status ranges planned as a sort of all of them.
func TestCheckPlansRefusesHistoryScans(t *testing.T) {
	pool := dbtest.Seeded(t)
	deep := []any{dbtest.SeedID("dlv", 1000), 11, dbtest.SeedMerchant, false}
	cursor := []string{`\(id < \$1\)`}
	for _, tt := range []struct {
		name  string
		args  []any
		sql   string
		conds []string
	}{
		{"optional filter and cursor", append(deep, StatusFailed), `select id from deliveries where merchant_id = $3 and livemode = $4
			and ($5 = '' or status = $5) and ($1 = '' or id < $1) order by id desc limit $2`, cursor},
		{"union of status ranges", deep, `select id from (select * from deliveries where status = 'pending'
			union all select * from deliveries where status = 'succeeded'
			union all select * from deliveries where status = 'failed') d
			where merchant_id = $3 and livemode = $4 and id < $1 order by id desc limit $2`, cursor},
		{"job lookup by state", []any{"", 100}, `select d.id, not exists (select 1 from river_job j
				where j.args @> jsonb_build_object('delivery_ids', jsonb_build_array(d.id))
					and j.state in ('available', 'scheduled', 'running', 'retryable', 'pending'))
			from deliveries d where d.status = 'pending' and d.id > $1 order by d.id limit $2`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &errorRecorder{T: t}
			dbtest.CheckPlans(rec, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
				rows, err := db.Query(ctx, tt.sql, tt.args...)
				if err != nil {
					return err
				}
				rows.Close()
				return rows.Err()
			}, dbtest.Want{Conds: tt.conds})
			if len(rec.errors) == 0 {
				t.Error("CheckPlans passed a plan that reads the history")
			}
		})
	}
}

// TestBackgroundStatementPlansAtScale checks the generic plans of the
// statements that work through the history in the background, on the seeded
// history (dbtest.Seeded: about 5,000 destinations with parked deliveries,
// 3,000 of them at the busy endpoint): the release's search for parked
// destinations reads one row per such destination, not per parked delivery;
// claiming and releasing a destination's parked deliveries, and pruning, read
// the rows they take. The statements that write run in a transaction rolled
// back at the end.
func TestBackgroundStatementPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	busy := dbtest.SeedBusyEndpoint
	destination := `\(COALESCE\(endpoint_id, \('url:'::text \|\| md5\(url\)\)\) = \$1\)`
	// The events minted before this id all still have deliveries: pruning
	// events reads each of them (and one delivery of each) and deletes none.
	oldEvents := 1000
	for _, s := range []struct {
		name string
		sql  string
		args []any
		want dbtest.Want
		// writes is set for a statement that returns no rows.
		writes bool
	}{
		{"parked destinations", parkedDestinations, []any{releaseDestinations, busyPause},
			dbtest.Want{MaxRead: 2 * dbtest.SeedEndpoints}, false},
		{"claim parked deliveries", claimParked, []any{busy, jobSize, time.Minute}, dbtest.Want{Conds: []string{destination}}, false},
		{"release parked deliveries", releaseParked, []any{busy, minRelease}, dbtest.Want{Conds: []string{destination}}, false},
		{"prunable deliveries", prunableDeliveries, []any{dbtest.SeedID("dlv", dbtest.SeedDeliveries/2), pruneBatch, dbtest.SeedID("dlv", 1000)},
			dbtest.Want{Conds: []string{`\(id < \$1\)`}}, false},
		{"prune events", pruneEvents, []any{dbtest.SeedID("evt", oldEvents), pruneBatch, ""},
			dbtest.Want{Conds: []string{`\(id < \$1\)`, `\(event_id = e\.id\)`}, MaxRead: float64(2 * oldEvents)}, true},
		{"prune idempotency keys", pruneIdempotencyKeys, nil,
			dbtest.Want{Conds: []string{`\(created_at < \(now\(\) - '24:00:00'::interval\)\)`}}, true},
		{"metrics: planner settings of the counts", queueDepthSettings, nil, dbtest.Want{}, false},
		{"metrics: queue depth", queueDepthSQL, []any{queueStates, queueDepthCap},
			dbtest.Want{MaxRead: float64(len(queueStates) * queueDepthCap)}, true},
		{"metrics: parked deliveries", parkedSQL, []any{queueDepthCap}, dbtest.Want{MaxRead: queueDepthCap}, false},
		// A busy endpoint's queued jobs, from
		// river_job_queued_destination_idx: not the destination's completed
		// jobs, nor other destinations' queued ones.
		{"set queued jobs aside", setAsideQueued, []any{withdrawnDestination, setAsideBatch},
			dbtest.Want{Conds: []string{`\(\(args ->> 'destination'::text\) = \$1\)`}}, false},
	} {
		t.Run(s.name, func(t *testing.T) {
			plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
				rows, err := db.Query(ctx, s.sql, s.args...)
				if err != nil {
					return err
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Err() == nil && n == 0 && !s.writes {
					t.Errorf("%s returned nothing: the seed has nothing for it to find", s.name)
				}
				return rows.Err()
			}, s.want)
			dbtest.LogPlans(t, plans)
		})
	}
}

// withdrawnDestination is an endpoint of the seed's large merchant with a
// few hundred queued jobs of 10 deliveries each, a third of them parked
// already.
const withdrawnDestination = "we_seed0000_2"

// The statement that withdraws a batch of a destination's queued jobs reads
// them from river_job_queued_destination_idx and each delivery they name by
// primary key, nothing else.
func TestWithdrawPlanAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	ctx := context.Background()
	var jobs, named int
	if err := pool.QueryRow(ctx, `select count(*), sum(jsonb_array_length(args->'delivery_ids')) from (select args from river_job
		where state = 'available' and args->>'destination' = $1 order by id limit $2) j`, withdrawnDestination, withdrawBatch).
		Scan(&jobs, &named); err != nil {
		t.Fatal(err)
	}
	if jobs != withdrawBatch {
		t.Fatalf("%d queued jobs of %s in the seed, want at least %d", jobs, withdrawnDestination, withdrawBatch)
	}
	plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
		rows, err := db.Query(ctx, withdrawQueued, withdrawnDestination, withdrawBatch)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() == nil && n != named {
			t.Errorf("the withdrawn jobs named %d deliveries, want the %d of the first %d", n, named, jobs)
		}
		return rows.Err()
	}, dbtest.Want{Conds: []string{`\(\(args ->> 'destination'::text\) = \$1\)`, `\(id = owed(_\d+)?\.id\)`}})
	dbtest.LogPlans(t, plans)
}

// TestReconcilerPlansAtScale checks the reconciler's statements on the
// seeded history, whose 18,867 pending deliveries among 1 M have River's jobs
// of a backlog (a completed and a waiting job each, but for 1 in 20 with no
// waiting job): a window reads its pending deliveries from the cursor on,
// through deliveries_unsettled_idx, and looks each one's jobs up through
// River's args index; the requeue reads the rows it is given and their
// jobs. Neither reads more as the history grows.
func TestReconcilerPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	ctx := context.Background()
	grace := JobTimeout(15*time.Second) + recordTimeout + time.Minute
	var mid string
	if err := pool.QueryRow(ctx, `select id from deliveries where status = 'pending' order by id offset 9000 limit 1`).Scan(&mid); err != nil {
		t.Fatal(err)
	}
	for _, after := range []string{"", mid} {
		t.Run("after "+cmp.Or(after, "the start"), func(t *testing.T) {
			var stranded []string
			plans := dbtest.CheckPlans(t, pool, ReconcilePlannerSettings(), func(ctx context.Context, db events.DB) error {
				stranded = nil
				rows, err := db.Query(ctx, pendingWindow, after, grace, reconcileWindow)
				if err != nil {
					return err
				}
				var id string
				var alone bool
				_, err = pgx.ForEachRow(rows, []any{&id, &alone}, func() error {
					if alone {
						stranded = append(stranded, id)
					}
					return nil
				})
				return err
			}, dbtest.Want{Conds: []string{`\(status = 'pending'::text\) AND \(id > \$1\)`, `\(args @> jsonb_build_object`}})
			dbtest.LogPlans(t, plans)
			// 1 pending delivery in 20 has no waiting job, and about half
			// of those are parked (the release owns them): about 1 in 40.
			if n := len(stranded); n < reconcileWindow/60 || n > reconcileWindow/25 {
				t.Fatalf("%d of a window of %d found ownerless, want about 1 in 40", n, reconcileWindow)
			}
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, ReconcilePlannerSettings(), func(ctx context.Context, db events.DB) error {
				rows, err := db.Query(ctx, requeueOwnerless, stranded, grace)
				if err != nil {
					return err
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Err() == nil && n != len(stranded) {
					return fmt.Errorf("requeued %d of %d", n, len(stranded))
				}
				return rows.Err()
			}, dbtest.Want{Conds: []string{`\(id = ANY \(\$1\)\)`, `\(args @> jsonb_build_object`}}))
		})
	}
}

// TestRecoveryPlansAtScale checks a recovery's statements on the seeded
// history, with 2,000 failed deliveries of the busy endpoint created (and
// their ids minted) an hour ago, beside its 4,300 seeded failed ones, older:
// its dry run's count and a batch of the reset read the window's rows
// through (endpoint_id, status, id), not the endpoint's other failed
// deliveries; and the dashboard's count of an endpoint's pending deliveries
// stops at CountCap.
func TestRecoveryPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	busy := dbtest.SeedBusyEndpoint
	until := time.Now()
	since := until.Add(-2 * time.Hour)
	const inWindow = 2000
	minted := events.FirstIDAt(events.PrefixDelivery, until.Add(-time.Hour))[:len("dlv_")+10]
	window := func(ctx context.Context, db events.DB) error {
		_, err := db.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
			attempt_count, created_at, updated_at)
			select $1 || lpad(g::text, 16, '0'), $2, false, $3, $4, 'https://example.com/', 'failed', 1,
				now() - interval '1 hour', now()
			from generate_series(1, $5::int) g`, minted, dbtest.SeedMerchant, dbtest.SeedID("evt", 1), busy, inWindow)
		return err
	}
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"dry run", func(ctx context.Context, db events.DB) error {
			if err := window(ctx, db); err != nil {
				return err
			}
			r, err := NewDispatcher(nil, nil).Recover(ctx, db.(pgx.Tx), nil, busy, since, until, true)
			if err == nil && r.Matched != inWindow {
				t.Errorf("the dry run matched %d, want the window's %d", r.Matched, inWindow)
			}
			return err
		}, dbtest.Want{MaxRead: 1.5 * inWindow}},
		{"a batch of the reset", func(ctx context.Context, db events.DB) error {
			if err := window(ctx, db); err != nil {
				return err
			}
			lo, hi := windowIDs(events.PrefixDelivery, since, until)
			rows, err := db.Query(ctx, resetFailed, busy, since, until, "", recoverBatch, lo, hi, StatusFailed)
			if err != nil {
				return err
			}
			ids, _, err := scanIDsAndCounts(rows)
			if err == nil && len(ids) != recoverBatch {
				t.Errorf("reset %d, want a whole batch of %d", len(ids), recoverBatch)
			}
			return err
		}, dbtest.Want{MaxRead: 3.5 * recoverBatch}}, // the batch, then each row twice by key (lock, update)
		{"pending deliveries of an endpoint", func(ctx context.Context, db events.DB) error {
			_, err := PendingDeliveries(ctx, db, busy)
			return err
		}, dbtest.Want{Conds: []string{`\(endpoint_id = \$1\) AND \(status = \$3\)`}, MaxRead: CountCap}},
	} {
		t.Run(s.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), s.run, s.want))
		})
	}
}
