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

// The two ends of a list query. Callers write their select with $1 (the
// cursor) and $2 (the limit) reserved and their own filters from $3 on. Ids are
// ULIDs, so id order is creation order: a page is an id range, which the
// (merchant, mode, id) indexes serve without an offset.
const (
	olderPage = " and ($1 = '' or id < $1) order by id desc limit $2"
	newerPage = " and id > $1 order by id asc limit $2"
)

// ListPage runs query, completed by olderPage or newerPage, for one page: the
// one pagination of every list, for this package and for delivery.
func ListPage[T any](ctx context.Context, db DB, page Page, query string, scan func(pgx.Rows) (T, error), args ...any) (*List[T], error) {
	cursor, suffix := page.StartingAfter, olderPage
	if page.EndingBefore != "" {
		cursor, suffix = page.EndingBefore, newerPage
	}
	rows, err := db.Query(ctx, query+suffix, append([]any{cursor, page.Limit + 1}, args...)...)
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
	if suffix == newerPage {
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
