package portal

import (
	"context"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/api/chart"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// pageSize is how many rows a list page of the portal shows.
const pageSize = 20

// maxDescription is the longest description, as the API's.
const maxDescription = 500

type endpointsView struct {
	Endpoints  []*delivery.Endpoint
	Next, Prev string
}

func (p *Portal) endpointsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	page := pageOf(r)
	list, err := delivery.List(r.Context(), p.cfg.Pool, s.scope, page)
	if err != nil {
		return err
	}
	v := endpointsView{Endpoints: list.Data}
	v.Next, v.Prev = cursors(page, list.HasMore, func(i int) string { return list.Data[i].ID }, len(list.Data))
	p.render(w, r, s, http.StatusOK, "endpoints", &view{Title: "Endpoints", Nav: "endpoints", Data: v})
	return nil
}

// Subscription choices of the endpoint form.
const (
	subscribeDefault  = "default"
	subscribeAll      = "all"
	subscribeSelected = "selected"
)

// endpointForm is the create and edit form, as sent and as shown again
// with its errors.
type endpointForm struct {
	// ID is the endpoint edited; empty for a new one.
	ID          string
	URL         string
	Description string
	Subscribe   string
	Events      map[string]bool
	Headers     string
	RateLimit   string
	Scheme      string
	Errors      map[string]string
	Catalog     []events.CatalogEntry
}

// formOf is the edit form of an existing endpoint.
func formOf(e *delivery.Endpoint) *endpointForm {
	f := &endpointForm{ID: e.ID, URL: e.URL, Subscribe: subscribeSelected, Events: map[string]bool{}, Scheme: e.SignatureScheme}
	if e.Description != nil {
		f.Description = *e.Description
	}
	for _, t := range e.EnabledEvents {
		if t == delivery.AllEvents {
			f.Subscribe = subscribeAll
		}
		f.Events[t] = true
	}
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
		lines = append(lines, name+": "+e.Headers[name])
	}
	f.Headers = strings.Join(lines, "\n")
	if e.RateLimit != nil {
		f.RateLimit = strconv.Itoa(*e.RateLimit)
	}
	return f
}

// readForm reads the endpoint form of a request.
func readForm(r *http.Request, id string) *endpointForm {
	f := &endpointForm{
		ID:          id,
		URL:         strings.TrimSpace(r.PostForm.Get("url")),
		Description: strings.TrimSpace(r.PostForm.Get("description")),
		Subscribe:   r.PostForm.Get("subscribe"),
		Events:      map[string]bool{},
		Headers:     r.PostForm.Get("headers"),
		RateLimit:   strings.TrimSpace(r.PostForm.Get("rate_limit")),
		Scheme:      r.PostForm.Get("signature_scheme"),
	}
	for _, t := range r.PostForm["events"] {
		f.Events[t] = true
	}
	return f
}

// parsed is what the form's own fields say, before the domain checks them.
type parsed struct {
	events    []string
	headers   map[string]string
	rateLimit *int
}

// parse reads the form's events, headers (one "Name: value" a line) and
// rate limit, or says which field it cannot read.
func (f *endpointForm) parse() (*parsed, *fieldError) {
	out := &parsed{headers: map[string]string{}}
	switch f.Subscribe {
	case subscribeAll:
		out.events = []string{delivery.AllEvents}
	case subscribeSelected:
		for _, e := range events.Catalog {
			if f.Events[string(e.Type)] {
				out.events = append(out.events, string(e.Type))
			}
		}
		if len(out.events) == 0 {
			return nil, &fieldError{field: "enabled_events", message: "Choose at least one event type, or all of them."}
		}
	case subscribeDefault:
		if f.ID != "" {
			return nil, &fieldError{field: "enabled_events", message: "Choose all event types or a selection."}
		}
	default:
		return nil, &fieldError{field: "enabled_events", message: "Choose which events the endpoint receives."}
	}
	if len(f.Description) > maxDescription {
		return nil, &fieldError{field: "description", message: "At most 500 characters."}
	}
	for i, line := range strings.Split(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, &fieldError{field: "headers", message: "Line " + strconv.Itoa(i+1) + " is not Name: value."}
		}
		out.headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	if f.RateLimit != "" {
		n, err := strconv.Atoi(f.RateLimit)
		if err != nil {
			return nil, &fieldError{field: "rate_limit", message: "A whole number of deliveries per second, or empty for no limit."}
		}
		out.rateLimit = &n
	}
	return out, nil
}

func (p *Portal) newEndpointPage(w http.ResponseWriter, r *http.Request, s *session) error {
	f := &endpointForm{Subscribe: subscribeDefault, Events: map[string]bool{}, Scheme: delivery.SchemeHMAC}
	for _, t := range events.DefaultEnabledTypes() {
		f.Events[string(t)] = true
	}
	p.showForm(w, r, s, http.StatusOK, f, nil)
	return nil
}

// showForm renders the endpoint form, with err beside its field.
func (p *Portal) showForm(w http.ResponseWriter, r *http.Request, s *session, status int, f *endpointForm, err *fieldError) {
	f.Catalog = events.Catalog
	f.Errors = map[string]string{}
	if err != nil {
		f.Errors[err.field] = err.message
	}
	title := "Add an endpoint"
	if f.ID != "" {
		title = "Edit endpoint"
	}
	p.render(w, r, s, status, "endpoint_form", &view{Title: title, Nav: "endpoints", Data: f})
}

// formFailed shows the form again when err is a refusal of its values, and
// reports whether it did.
func (p *Portal) formFailed(w http.ResponseWriter, r *http.Request, s *session, f *endpointForm, err error) bool {
	fe := domainMessage(err)
	if fe == nil {
		return false
	}
	p.showForm(w, r, s, http.StatusBadRequest, f, fe)
	return true
}

// errSubmitted is a create or rotate form sent again (onceForm).
var errSubmitted = errors.New("portal form already submitted")

// onceForm runs do, the work of a form that makes a secret (create,
// rotate), in tx at most once per rendering of the form, and returns do's
// result (an endpoint id); a resubmission does nothing and returns
// errSubmitted with the first submission's result.
//
// Why: the secret is shown once, in the answer to the POST that made it,
// so that it never sits in a URL, the history, or a store to be fetched
// again (a post-redirect-get would need one, and hookline keeps secrets
// only sealed, for signing). A browser's reload of that answer, or Back
// and Send again, re-posts the form: without this it would create a second
// endpoint or rotate the secret once more, silently ending the one just
// copied. Each rendering of a form carries a fresh random key (view.Once),
// which the first submission claims among the merchant's idempotency keys
// (Config.Once, in the form's own transaction: a failed submission frees it
// for another try); a key kept in a process's memory would be missed by the
// next request on another API process. The replay does not show the secret
// again.
func (p *Portal) onceForm(ctx context.Context, tx pgx.Tx, r *http.Request, s *session, do func() (string, error)) (string, error) {
	key := r.PostForm.Get("once")
	if !onceKey.MatchString(key) {
		return "", errForbidden
	}
	result, replayed, err := p.cfg.Once(ctx, tx, s.scope, r.URL.Path, key, do)
	if err == nil && replayed {
		err = errSubmitted
	}
	return result, err
}

// onceKey is the shape of view.Once: crypto/rand's Text.
var onceKey = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// submitted renders the page of a form sent again (onceForm): a 409 with a
// link to the endpoint the first submission acted on, when it is known.
func (p *Portal) submitted(w http.ResponseWriter, r *http.Request, s *session, endpointID string) {
	n := notices[errSubmitted]
	if endpointID != "" {
		n.Continue = "/portal/endpoints/" + endpointID
	}
	p.render(w, r, s, http.StatusConflict, "notice", &view{Title: n.Heading, Nav: "endpoints", Data: n})
}

// createEndpoint creates an endpoint through delivery.Endpoints, as POST
// /v1/webhook_endpoints does, and shows it with its secret: the only time
// the secret is shown, so the page is the POST's answer (a redirect would
// have to carry it), and the form acts once (onceForm).
func (p *Portal) createEndpoint(w http.ResponseWriter, r *http.Request, s *session) error {
	f := readForm(r, "")
	in, ferr := f.parse()
	if ferr != nil {
		p.showForm(w, r, s, http.StatusBadRequest, f, ferr)
		return nil
	}
	params := delivery.EndpointParams{URL: f.URL, EnabledEvents: in.events, SignatureScheme: f.Scheme, RateLimit: in.rateLimit}
	if f.Description != "" {
		params.Description = &f.Description
	}
	if len(in.headers) > 0 {
		params.Headers = in.headers
	}
	checked, err := p.cfg.Endpoints.Check(r.Context(), params)
	var e *delivery.Endpoint
	var id string
	if err == nil {
		err = pgx.BeginFunc(r.Context(), p.cfg.Pool, func(tx pgx.Tx) (err error) {
			id, err = p.onceForm(r.Context(), tx, r, s, func() (_ string, err error) {
				if e, err = p.cfg.Endpoints.Create(r.Context(), tx, s.scope, checked); err != nil {
					return "", err
				}
				return e.ID, nil
			})
			return err
		})
	}
	if errors.Is(err, errSubmitted) {
		p.submitted(w, r, s, id)
		return nil
	}
	if err != nil {
		if p.formFailed(w, r, s, f, err) {
			return nil
		}
		return err
	}
	return p.showEndpoint(w, r, s, http.StatusCreated, e, "Endpoint created.")
}

func (p *Portal) editEndpointPage(w http.ResponseWriter, r *http.Request, s *session) error {
	e, err := delivery.Get(r.Context(), p.cfg.Pool, s.scope, r.PathValue("id"))
	if err != nil {
		return err
	}
	p.showForm(w, r, s, http.StatusOK, formOf(e), nil)
	return nil
}

// updateEndpoint saves the edit form through delivery.Endpoints, as PATCH
// /v1/webhook_endpoints/{id} does. The form is whole: an empty headers
// field removes them, an empty rate limit removes it.
func (p *Portal) updateEndpoint(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	f := readForm(r, id)
	in, ferr := f.parse()
	if ferr != nil {
		p.showForm(w, r, s, http.StatusBadRequest, f, ferr)
		return nil
	}
	update := delivery.EndpointUpdate{URL: &f.URL, EnabledEvents: in.events, Description: &f.Description,
		SetRateLimit: true, RateLimit: in.rateLimit, Headers: in.headers}
	err := p.update(r.Context(), s, id, update)
	if err != nil {
		if p.formFailed(w, r, s, f, err) {
			return nil
		}
		return err
	}
	http.Redirect(w, r, "/portal/endpoints/"+id+"?flash=saved", http.StatusSeeOther)
	return nil
}

// update checks and applies an update to one of the session's endpoints.
func (p *Portal) update(ctx context.Context, s *session, id string, u delivery.EndpointUpdate) error {
	checked, err := p.cfg.Endpoints.CheckUpdate(ctx, u)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p.cfg.Pool, func(tx pgx.Tx) error {
		_, err := p.cfg.Endpoints.Update(ctx, tx, s.scope, id, checked)
		return err
	})
}

// setStatus enables or disables an endpoint, as a PATCH of its status does.
func (p *Portal) setStatus(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	status := r.PostForm.Get("status")
	if err := p.update(r.Context(), s, id, delivery.EndpointUpdate{Status: &status}); err != nil {
		return err
	}
	http.Redirect(w, r, "/portal/endpoints/"+id+"?flash="+status, http.StatusSeeOther)
	return nil
}

// Grace periods the rotate form offers.
var gracePeriods = []struct {
	Seconds int64
	Label   string
}{{0, "none: stop the old secret now"}, {3600, "1 hour"}, {86400, "24 hours"}, {604800, "7 days"}}

// graceLabel says a grace period as the rotate form offers it ("24 hours"),
// or in seconds for any other.
func graceLabel(seconds int64) string {
	for _, g := range gracePeriods {
		if g.Seconds == seconds && seconds > 0 {
			return g.Label
		}
	}
	return strconv.FormatInt(seconds, 10) + " seconds"
}

// rotateSecret rotates an endpoint's secret and shows the new one, once, as
// the POST's answer; the form acts once (onceForm).
func (p *Portal) rotateSecret(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	grace := int64(delivery.DefaultGracePeriod / time.Second)
	if v := r.PostForm.Get("grace_period_seconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		// Checked before it is multiplied into a Duration, which would
		// overflow (as the API checks it).
		if err != nil || n < 0 || n > int64(delivery.MaxGracePeriod/time.Second) {
			return &fieldError{field: "grace_period_seconds", message: "The grace period must be from 0 to 604800 seconds (7 days)."}
		}
		grace = n
	}
	var e *delivery.Endpoint
	err := pgx.BeginFunc(r.Context(), p.cfg.Pool, func(tx pgx.Tx) error {
		_, err := p.onceForm(r.Context(), tx, r, s, func() (_ string, err error) {
			e, err = p.cfg.Endpoints.RotateSecret(r.Context(), tx, s.scope, id, time.Duration(grace)*time.Second)
			return id, err
		})
		return err
	})
	if errors.Is(err, errSubmitted) {
		p.submitted(w, r, s, id)
		return nil
	}
	if err != nil {
		return err
	}
	msg := "Secret rotated. The previous one stops signing now."
	if grace > 0 {
		msg = "Secret rotated. Deliveries are signed with the previous secret too for the next " + graceLabel(grace) +
			", while you update your receiver."
	}
	return p.showEndpoint(w, r, s, http.StatusOK, e, msg)
}

// sendTestEvent sends a test event of the chosen type, as POST
// /v1/webhook_endpoints/{id}/send_test_event does, and opens its delivery.
func (p *Portal) sendTestEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	t := events.EventType(r.PostForm.Get("type"))
	var d *delivery.Delivery
	err := pgx.BeginFunc(r.Context(), p.cfg.Pool, func(tx pgx.Tx) (err error) {
		d, err = p.cfg.Dispatcher.SendTestEvent(r.Context(), tx, p.cfg.Service, s.scope, id, t)
		return err
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, waitingURL(d.ID, 0, "test"), http.StatusSeeOther)
	return nil
}

func (p *Portal) deleteEndpointPage(w http.ResponseWriter, r *http.Request, s *session) error {
	e, err := delivery.Get(r.Context(), p.cfg.Pool, s.scope, r.PathValue("id"))
	if err != nil {
		return err
	}
	p.render(w, r, s, http.StatusOK, "endpoint_delete", &view{Title: "Delete endpoint", Nav: "endpoints", Data: e})
	return nil
}

// deleteEndpoint deletes an endpoint, as DELETE /v1/webhook_endpoints/{id}
// does, once its confirmation page is submitted.
func (p *Portal) deleteEndpoint(w http.ResponseWriter, r *http.Request, s *session) error {
	err := pgx.BeginFunc(r.Context(), p.cfg.Pool, func(tx pgx.Tx) error {
		return delivery.Delete(r.Context(), tx, s.scope, r.PathValue("id"))
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/portal/endpoints?flash=deleted", http.StatusSeeOther)
	return nil
}

// endpointView is an endpoint's page.
type endpointView struct {
	Endpoint *delivery.Endpoint
	// Secret is the secret (or public key) just created or rotated, shown
	// on this page only.
	Secret      string
	SecretLabel string
	Deliveries  []deliveryRow
	Catalog     []events.CatalogEntry
	Graces      any
	AllEvents   bool
	// Stats are the endpoint's statistics over Window, drawn by api/chart.
	Stats   *delivery.Stats
	Window  string
	Windows []string
	// WindowNote says the page's ?window= was not a window, and which one
	// the statistics show instead.
	WindowNote string
	Outcomes   template.HTML
	Latency    template.HTML
}

func (p *Portal) endpointPage(w http.ResponseWriter, r *http.Request, s *session) error {
	e, err := delivery.Get(r.Context(), p.cfg.Pool, s.scope, r.PathValue("id"))
	if err != nil {
		return err
	}
	return p.showEndpoint(w, r, s, http.StatusOK, e, "")
}

// showEndpoint renders an endpoint's page, with its secret when e carries
// one (just created or rotated) and the recent deliveries to it.
func (p *Portal) showEndpoint(w http.ResponseWriter, r *http.Request, s *session, status int, e *delivery.Endpoint, flash string) error {
	recent, err := delivery.ListDeliveries(r.Context(), p.cfg.Pool, s.scope, delivery.DeliveryFilter{EndpointID: e.ID},
		events.Page{Limit: 10})
	if err != nil {
		return err
	}
	rows, err := p.deliveryRows(r.Context(), s, recent.Data)
	if err != nil {
		return err
	}
	window, ok := delivery.PageStatsWindow(r.URL.Query()["window"])
	stats, err := delivery.EndpointStats(r.Context(), p.cfg.Pool, s.scope, e.ID, window, time.Now())
	if err != nil {
		return err
	}
	v := endpointView{Endpoint: e, Deliveries: rows, Catalog: events.Catalog, Graces: gracePeriods,
		AllEvents: slices.Contains(e.EnabledEvents, delivery.AllEvents), Stats: stats, Window: window,
		Windows:  []string{delivery.StatsWindowHour, delivery.StatsWindowDay, delivery.StatsWindowWeek},
		Outcomes: chart.Outcomes(stats.Series, window), Latency: chart.Latency(stats.Series, window)}
	if !ok {
		v.WindowNote = "This link asked for a period the portal does not keep. Showing the last 24 hours; " +
			"choose 1h, 24h or 7d above."
	}
	switch {
	case e.Secret != "":
		v.Secret, v.SecretLabel = e.Secret, "Signing secret"
	case e.PublicKey != "":
		v.Secret, v.SecretLabel = e.PublicKey, "Public key"
	}
	p.render(w, r, s, status, "endpoint", &view{Title: endpointTitle(e), Nav: "endpoints", Flash: flash, Data: v})
	return nil
}

func endpointTitle(e *delivery.Endpoint) string {
	if e.Description != nil && *e.Description != "" {
		return *e.Description
	}
	return e.URL
}
