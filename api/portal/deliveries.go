package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// deliveryRow is a delivery in a list, with its event's type.
type deliveryRow struct {
	*delivery.Delivery
	EventType string
}

// deliveryRows reads the event type of each delivery of a page (one lookup
// of the event by primary key each: a page has at most pageSize).
func (p *Portal) deliveryRows(ctx context.Context, s *session, list []*delivery.Delivery) ([]deliveryRow, error) {
	rows := make([]deliveryRow, len(list))
	for i, d := range list {
		rows[i].Delivery = d
		evt, err := events.GetEvent(ctx, p.cfg.Pool, s.scope, d.Event)
		if err != nil {
			return nil, err
		}
		rows[i].EventType = string(evt.Type)
	}
	return rows, nil
}

type deliveriesView struct {
	Rows     []deliveryRow
	Status   string
	Endpoint string
	Statuses []string
	// Next is the cursor of the next (older) page, Prev the cursor of the
	// previous (newer) one.
	Next, Prev string
}

// pageOf is the page a list's URL asks for: ?after= (older) or ?before=
// (newer) a cursor, or the first.
func pageOf(r *http.Request) events.Page {
	page := events.Page{Limit: pageSize, StartingAfter: r.URL.Query().Get("after")}
	if page.StartingAfter == "" {
		page.EndingBefore = r.URL.Query().Get("before")
	}
	return page
}

// cursors are the cursors of the pages older (next) and newer (prev) than
// the n rows read for page, "" where there is none: read newer than a
// cursor, more says there are newer ones; otherwise, older ones.
func cursors(page events.Page, more bool, id func(int) string, n int) (next, prev string) {
	if n == 0 {
		return "", ""
	}
	if page.EndingBefore != "" || more {
		next = id(n - 1)
	}
	if page.StartingAfter != "" || page.EndingBefore != "" && more {
		prev = id(0)
	}
	return next, prev
}

// FilterURL is the deliveries list with the view's endpoint filter and a
// status (and a cursor, when given).
func (v deliveriesView) FilterURL(status string) string {
	return listURL(v.Endpoint, status, "", "")
}

// PageURL is the list with the view's filters after (or before) a cursor.
func (v deliveriesView) PageURL(after, before string) string {
	return listURL(v.Endpoint, v.Status, after, before)
}

func listURL(endpoint, status, after, before string) string {
	q := url.Values{}
	for k, v := range map[string]string{"endpoint": endpoint, "status": status, "after": after, "before": before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "/portal/deliveries"
	}
	return "/portal/deliveries?" + q.Encode()
}

// deliveriesPage lists the session's deliveries, newest first, by
// delivery.ListDeliveries (the API's list), filtered by endpoint and status.
func (p *Portal) deliveriesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	v := deliveriesView{Status: q.Get("status"), Endpoint: q.Get("endpoint"),
		Statuses: []string{delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed}}
	switch v.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed:
	default:
		v.Status = ""
	}
	page := pageOf(r)
	list, err := delivery.ListDeliveries(r.Context(), p.cfg.Pool, s.scope,
		delivery.DeliveryFilter{EndpointID: v.Endpoint, Status: v.Status}, page)
	if err != nil {
		return err
	}
	if v.Rows, err = p.deliveryRows(r.Context(), s, list.Data); err != nil {
		return err
	}
	v.Next, v.Prev = cursors(page, list.HasMore, func(i int) string { return list.Data[i].ID }, len(list.Data))
	p.render(w, r, s, http.StatusOK, "deliveries", &view{Title: "Deliveries", Nav: "deliveries", Data: v})
	return nil
}

type deliveryView struct {
	Delivery  *delivery.Delivery
	EventType string
	Payload   string
	Waiting   string
}

// retryWait is how long a delivery's page reloads itself after a retry or a
// test event, waiting for the attempt to be recorded.
const retryWait = 30 * time.Second

// waitingURL is a delivery's page that waits for its attempt after
// attempts, with a flash.
func waitingURL(id string, attempts int, flash string) string {
	return "/portal/deliveries/" + id + "?flash=" + flash + "&after_attempt=" + strconv.Itoa(attempts) +
		"&wait_until=" + strconv.FormatInt(time.Now().Add(retryWait).Unix(), 10)
}

// deliveryPage shows a delivery, its event and its attempts. After a retry
// or a test event the URL says which attempt it waits for: the page reloads
// itself (a meta refresh) until that attempt is recorded, for up to
// retryWait.
func (p *Portal) deliveryPage(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	d, err := delivery.GetDelivery(r.Context(), p.cfg.Pool, &s.scope, id)
	if err != nil {
		return err
	}
	evt, err := events.GetEvent(r.Context(), p.cfg.Pool, s.scope, d.Event)
	if err != nil {
		return err
	}
	v := deliveryView{Delivery: d, EventType: string(evt.Type), Payload: indent(evt.Payload)}
	page := &view{Title: "Delivery " + id, Nav: "deliveries", Data: &v}
	after, err1 := strconv.Atoi(r.URL.Query().Get("after_attempt"))
	until, err2 := strconv.ParseInt(r.URL.Query().Get("wait_until"), 10, 64)
	if err1 == nil && err2 == nil && d.AttemptCount <= after {
		if time.Now().Before(time.Unix(until, 0)) {
			v.Waiting, page.Refresh = "Sending attempt "+strconv.Itoa(after+1)+"… this page updates by itself.", 1
		} else {
			v.Waiting = "Attempt " + strconv.Itoa(after+1) + " is not recorded yet: your endpoint may be paused or busy. Reload to check again."
		}
	}
	p.render(w, r, s, http.StatusOK, "delivery", page)
	return nil
}

// retryDelivery queues one attempt now, as POST /v1/deliveries/{id}/retry
// does, and opens the delivery's page waiting for it.
func (p *Portal) retryDelivery(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	var d *delivery.Delivery
	err := pgx.BeginFunc(r.Context(), p.cfg.Pool, func(tx pgx.Tx) (err error) {
		d, err = p.cfg.Dispatcher.Retry(r.Context(), tx, s.scope, id)
		return err
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, waitingURL(id, d.AttemptCount, "retried"), http.StatusSeeOther)
	return nil
}

// indent pretty-prints JSON for a page; anything else is shown as it is.
func indent(raw []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return string(raw)
	}
	return out.String()
}
