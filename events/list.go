package events

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Page selects a page of a list, Stripe's way: newest first, Limit items, after
// the StartingAfter id or before the EndingBefore id (at most one is set).
type Page struct {
	Limit         int
	StartingAfter string
	EndingBefore  string
}

// List is one page of a list and whether more items lie beyond it in the
// direction the page was read.
type List[T any] struct {
	Data    []T
	HasMore bool
}

// The three ways a list query ends. Callers write their select with $1 (the
// cursor) and $2 (the limit) reserved and their own filters from $3 on. Ids are
// ULIDs, so id order is creation order: a page is an id range, which the
// (merchant, mode, …, id) indexes serve without an offset. Each page shape is
// its own statement, so that under a generic plan (plan_cache_mode is
// force_generic_plan) the cursor is an index condition: `($1 = ” or id < $1)`
// would be a filter on every row of the merchant's history. On the first page
// $1 is null, a one-time check that keeps the parameter typed.
type pageEnd struct {
	// op compares the key with the cursor ("" on the first page), and dir
	// is the order the page is read in.
	op, dir string
}

var (
	firstPage = pageEnd{"", "desc"}
	olderPage = pageEnd{"<", "desc"}
	newerPage = pageEnd{">", "asc"}
)

// on ends the select of the rows whose key (an id) is the list's order.
func (e pageEnd) on(key string) string {
	if e.op == "" {
		return " and $1::text is null order by " + key + " desc limit $2"
	}
	return " and " + key + " " + e.op + " $1 order by " + key + " " + e.dir + " limit $2"
}

// outer orders and limits again, by key, the rows of a merged list
// (ListMergedPage, ListKeyedPage).
func (e pageEnd) outer(key string) string { return " order by " + key + " " + e.dir + " limit $2" }

// ListPage runs query, completed by the page's end, for one page: the one
// pagination of every list, for this package and for delivery.
func ListPage[T any](ctx context.Context, db DB, page Page, query string, scan func(pgx.Rows) (T, error), args ...any) (*List[T], error) {
	return listPage(ctx, db, page, func(end pageEnd) string { return query + end.on("id") }, scan, args...)
}

// ListMergedPage runs a list that merges several index ranges, for one page.
// query selects the list's columns from a set of ranges (unnest) cross
// joined with a lateral subquery that reads each, and stops after that
// subquery's where clause: ListMergedPage ends the subquery with the page's
// cursor, order and limit, then orders the merged rows and keeps the page.
// Each range reads at most a page, whatever the history: a plan the planner
// cannot turn into a sort of every range, as it may a UNION ALL.
func ListMergedPage[T any](ctx context.Context, db DB, page Page, query string, scan func(pgx.Rows) (T, error), args ...any) (*List[T], error) {
	return listPage(ctx, db, page, func(end pageEnd) string { return query + end.on("id") + ") merged" + end.outer("id") }, scan, args...)
}

// ListKeyedPage runs a list whose page is chosen in another table, from
// several index ranges merged, where the list's ids are the column key (the
// events that have a delivery not succeeded: deliveries' event_id, type by
// type). query selects the list's columns from a subquery that opens the
// ranges as ListMergedPage's query does, with a lateral subquery of distinct
// keys, and stops after that subquery's where clause. ListKeyedPage ends it
// with the page's cursor, order and limit on key, merges the ranges' keys
// and keeps the page's, then appends join, which closes the outer subquery
// and reads the list's rows by key, and orders them by id (the key's value)
// in the page's direction. Each range reads an index ending in key from the
// cursor, so a page costs at most a page of keys for each range, however
// deep, and its rows.
func ListKeyedPage[T any](ctx context.Context, db DB, page Page, key, query, join string, scan func(pgx.Rows) (T, error), args ...any) (*List[T], error) {
	return listPage(ctx, db, page, func(end pageEnd) string {
		return query + end.on(key) + ") merged" + end.outer(key) + join + end.outer("id")
	}, scan, args...)
}

func listPage[T any](ctx context.Context, db DB, page Page, query func(pageEnd) string, scan func(pgx.Rows) (T, error), args ...any) (*List[T], error) {
	var cursor any
	end := firstPage
	switch {
	case page.EndingBefore != "":
		cursor, end = page.EndingBefore, newerPage
	case page.StartingAfter != "":
		cursor, end = page.StartingAfter, olderPage
	}
	rows, err := db.Query(ctx, query(end), append([]any{cursor, page.Limit + 1}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(pgx.CollectableRow) (T, error) { return scan(rows) })
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	list := &List[T]{Data: items}
	if len(items) > page.Limit {
		list.Data, list.HasMore = items[:page.Limit], true
	}
	if end == newerPage {
		slices.Reverse(list.Data)
	}
	return list, nil
}

// WrapNotFound turns pgx.ErrNoRows into ErrNotFound and wraps anything else
// with what was being done.
func WrapNotFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return fmt.Errorf("%s: %w", what, err)
}
