package events

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// StreamCursor is a position in a merchant's event log in stream order: the
// order of (the id of the transaction that wrote the event, the event's id).
// Event ids are minted before their transaction commits, so id order is not
// the order in which events become visible; a reader that kept its place by
// id would skip an event whose transaction commits after a later-minted one
// was read. The stream reads instead only the events of transactions older
// than every transaction still running (the xmin of the statement's
// snapshot): such a transaction has ended, so every event it wrote is
// visible, and none can ever be added below that horizon, since a
// transaction still running, or yet to start, has an id at or above it. A
// cursor below the horizon therefore never has an event appear behind it
// (no gaps), and moves strictly forward (no repeats). The price: an event
// waits, before it is streamed, for every writing transaction that started
// before it to end (a few milliseconds, the length of the longest one).
type StreamCursor struct {
	TxID uint64
	ID   string
}

// StreamEvent is an event as a stream reads it, with its place in the stream.
type StreamEvent struct {
	ID      string
	Type    EventType
	Payload []byte
	Cursor  StreamCursor
}

// streamStart is the cursor of a stream that starts now: before every event
// of a transaction that has not ended (and of those yet to start), so that an
// event whose transaction is under way when the stream opens is streamed;
// with the scope's last event before it, read in the same snapshot, so that
// no event lies between the two.
const streamStart = `select s.xmin::text, h.id from (select pg_snapshot_xmin(pg_current_snapshot()) as xmin) s
	left join lateral (select id from events e where e.merchant_id = $1 and e.livemode = $2 and e.txid < s.xmin
		order by e.txid desc, e.id desc limit 1) h on true`

// streamCursorAt is the cursor of one of the scope's events. An event written
// before migration 012 has no txid: it sorts before every streamed event.
const streamCursorAt = `select coalesce(txid::text, '0') from events where id = $1 and merchant_id = $2 and livemode = $3`

// readStream reads the scope's final events after a cursor, over
// events_stream_idx: the merchant, the mode, the cursor and the horizon are
// all index conditions, and the order is the index's (the output column is
// not named txid, which order by would take for it and sort as text).
const readStream = `select id, type, payload, txid::text as tx from events
	where merchant_id = $1 and livemode = $2 and (txid, id) > ($3::text::xid8, $4)
		and txid < pg_snapshot_xmin(pg_current_snapshot())
	order by txid, id limit $5`

// streamHeads reads, for each scope, the cursor of its last final event.
const streamHeads = `select s.merchant_id, s.livemode, h.txid::text, h.id
	from unnest($1::text[], $2::bool[]) as s (merchant_id, livemode)
	cross join lateral (select txid, id from events e
		where e.merchant_id = s.merchant_id and e.livemode = s.livemode
			and e.txid < pg_snapshot_xmin(pg_current_snapshot())
		order by e.txid desc, e.id desc limit 1) h`

// StreamStart returns the cursor of a scope's stream that starts now, and the
// id of the scope's last event before it ("" if it has none): resuming after
// that event (StreamCursorAt) reads exactly what starting at the cursor
// does, so a stream can give it as its first id, and a client that drops
// before its first event still resumes without a gap.
func StreamStart(ctx context.Context, db DB, scope Scope) (StreamCursor, string, error) {
	var xmin string
	var last *string
	if err := db.QueryRow(ctx, streamStart, scope.MerchantID, scope.Livemode).Scan(&xmin, &last); err != nil {
		return StreamCursor{}, "", fmt.Errorf("stream start: %w", err)
	}
	txid, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil {
		return StreamCursor{}, "", fmt.Errorf("stream start: %w", err)
	}
	if last == nil {
		return StreamCursor{TxID: txid}, "", nil
	}
	return StreamCursor{TxID: txid}, *last, nil
}

// StreamCursorAt returns the cursor just after one of the scope's events, to
// resume a stream that had read it; ErrNotFound when the scope has no such
// event (another merchant's, or pruned).
func StreamCursorAt(ctx context.Context, db DB, scope Scope, eventID string) (StreamCursor, error) {
	var txid string
	err := db.QueryRow(ctx, streamCursorAt, eventID, scope.MerchantID, scope.Livemode).Scan(&txid)
	if err != nil {
		return StreamCursor{}, WrapNotFound(err, "find stream cursor")
	}
	n, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return StreamCursor{}, fmt.Errorf("find stream cursor: %w", err)
	}
	return StreamCursor{TxID: n, ID: eventID}, nil
}

// ReadStream returns up to limit of the scope's events after a cursor, in
// stream order, of transactions that have ended (see StreamCursor).
func ReadStream(ctx context.Context, db DB, scope Scope, after StreamCursor, limit int) ([]StreamEvent, error) {
	rows, err := db.Query(ctx, readStream, scope.MerchantID, scope.Livemode, strconv.FormatUint(after.TxID, 10), after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StreamEvent, error) {
		var e StreamEvent
		var txid string
		if err := row.Scan(&e.ID, &e.Type, &e.Payload, &txid); err != nil {
			return e, err
		}
		e.Cursor.ID = e.ID
		e.Cursor.TxID, err = strconv.ParseUint(txid, 10, 64)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	return out, nil
}

// StreamHeads returns, for each scope that has one, the cursor of its last
// event of a transaction that has ended: a scope's head moves exactly when
// new events become readable there, since the horizon only rises.
func StreamHeads(ctx context.Context, db DB, scopes []Scope) (map[Scope]StreamCursor, error) {
	merchants, modes := make([]string, len(scopes)), make([]bool, len(scopes))
	for i, s := range scopes {
		merchants[i], modes[i] = s.MerchantID, s.Livemode
	}
	rows, err := db.Query(ctx, streamHeads, merchants, modes)
	if err != nil {
		return nil, fmt.Errorf("read stream heads: %w", err)
	}
	heads := map[Scope]StreamCursor{}
	var s Scope
	var txid, id string
	_, err = pgx.ForEachRow(rows, []any{&s.MerchantID, &s.Livemode, &txid, &id}, func() error {
		n, err := strconv.ParseUint(txid, 10, 64)
		heads[s] = StreamCursor{TxID: n, ID: id}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read stream heads: %w", err)
	}
	return heads, nil
}
