package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/api/chart"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// The operator dashboard: server-rendered pages over the same queries as the
// operator API, behind the operator token. Logging in sets an HttpOnly,
// SameSite=Strict, Secure cookie holding the login's time signed with a key
// derived from the token (never the token itself), which the server refuses
// sessionLength after login whatever the browser keeps; every form carries a
// CSRF token derived from the token, and every action redirects back
// (post/redirect/get). Wrong tokens count towards the failure limit of the
// client's address, like wrong API keys.

//go:embed dashboard.html
var dashboardFiles embed.FS

var dashboardTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"unix":    func(s int64) string { return time.Unix(s, 0).UTC().Format("2006-01-02 15:04:05 MST") },
	"capped":  delivery.Capped,
	"percent": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" },
}).ParseFS(dashboardFiles, "dashboard.html"))

const sessionCookie = "hookline_operator"

// sessionLength is how long a dashboard login lasts.
const sessionLength = 12 * time.Hour

// derive returns a value bound to the operator token, for a purpose: what the
// session cookie and the CSRF fields hold. Changing the token voids both.
func (s *Server) derive(purpose string) string {
	mac := hmac.New(sha256.New, []byte(s.operatorToken))
	mac.Write([]byte("hookline dashboard " + purpose))
	return hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) dashboardRoutes() {
	s.mux.HandleFunc("GET /dashboard", s.dashboard(s.overviewPage))
	s.mux.HandleFunc("GET /dashboard/deliveries/{id}", s.dashboard(s.deliveryPage))
	s.mux.HandleFunc("GET /dashboard/endpoints/{id}", s.dashboard(s.endpointPage))
	s.mux.HandleFunc("POST /dashboard/login", s.login)
	s.mux.HandleFunc("POST /dashboard/logout", s.logout)
	s.mux.HandleFunc("POST /dashboard/deliveries/{id}/retry", s.dashboardAction(s.dashboardRetry))
	s.mux.HandleFunc("POST /dashboard/endpoints/{id}/enable", s.dashboardAction(s.dashboardEnable))
	s.mux.HandleFunc("POST /dashboard/endpoints/{id}/recover", s.dashboardAction(s.dashboardRecover))
}

// session is the session cookie's value for a login at issued: the Unix time
// and its HMAC under a key derived from the operator token, so that the
// server can tell its age and changing the token voids every session.
func (s *Server) session(issued time.Time) string {
	at := strconv.FormatInt(issued.Unix(), 10)
	return at + "." + s.sessionMAC(at)
}

// sessionMAC signs a session's issue time under its own derivation label:
// the earlier cookie's value was derive("session") itself, so a key under
// that label would be known to anyone holding an old cookie.
func (s *Server) sessionMAC(at string) string {
	mac := hmac.New(sha256.New, []byte(s.derive("session-key v2")))
	mac.Write([]byte(at))
	return hex.EncodeToString(mac.Sum(nil))
}

// validSession reports whether a session cookie's value is one this server
// issued less than sessionLength ago.
func (s *Server) validSession(value string, now time.Time) bool {
	at, mac, ok := strings.Cut(value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.sessionMAC(at))) {
		return false
	}
	issued, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return false
	}
	age := now.Sub(time.Unix(issued, 0))
	return age >= -time.Minute && age < sessionLength // a minute for clocks of several API nodes
}

// signedIn reports whether a request carries a live session cookie or the
// operator token as a bearer token.
func (s *Server) signedIn(r *http.Request) bool {
	if s.operatorToken == "" {
		return false
	}
	if c, err := r.Cookie(sessionCookie); err == nil && s.validSession(c.Value, time.Now()) {
		return true
	}
	if _, err := s.authenticateOperator(r); err == nil {
		return true
	}
	return false
}

// dashboardAuth reports whether the request is signed in (signedIn), counting a
// wrong bearer token as a failed authentication. It answers the request
// itself, and reports ok false, when its client address is over the failure
// limit: then no token is compared.
func (s *Server) dashboardAuth(w http.ResponseWriter, r *http.Request) (in, ok bool) {
	a, err := s.beginAuth(w, r)
	if err != nil {
		s.dashboardError(w, r, "", err)
		return false, false
	}
	in = s.signedIn(r)
	a.done(!in && r.Header.Get("Authorization") != "")
	return in, true
}

type page struct {
	Title      string
	Flash      string
	CSRF       string
	Endpoints  []delivery.FailingEndpoint
	Deliveries []delivery.OperatorDelivery
	Delivery   *delivery.Delivery
	// Endpoint's page: the endpoint, its scope, its statistics over the
	// window asked for, and their charts.
	Endpoint          *delivery.Endpoint
	Scope             events.Scope
	Stats             *delivery.Stats
	Windows           []string
	Outcomes, Latency template.HTML
	// Waiting says that the attempt a retry queued is not recorded yet, and
	// Refresh, when not 0, reloads the page after that many seconds to show
	// it (the dashboard has no JavaScript).
	Waiting string
	Refresh int
	// Problem is the error page's message: what the API would answer.
	Problem string
}

// render writes a page. Its message is the page's own (a refused login's),
// else the one the action that redirected here left in the URL (but on an
// error page, which says what failed instead).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, content string, p *page) {
	if p.Flash == "" && p.Problem == "" {
		p.Flash = r.URL.Query().Get("msg")
	}
	t, err := dashboardTemplates.Clone()
	if err == nil {
		_, err = t.New("content").Parse(`{{template "` + content + `" .}}`)
	}
	if err != nil {
		s.renderError(w, r, err) // a template of ours that does not parse: no page can be drawn
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", p); err != nil {
		s.logger.ErrorContext(r.Context(), "render dashboard", "error", err.Error())
	}
}

// dashboardError renders the dashboard's error page for err, with the
// status and the public message the API would answer (failure): a browser
// gets a page it can read and leave, not a JSON body. csrf is the session's
// CSRF token when signed in, for the header's Log out, else "".
func (s *Server) dashboardError(w http.ResponseWriter, r *http.Request, csrf string, err error) {
	e := s.failure(w, r, err)
	s.render(w, r, e.Status, "error-content", &page{Title: strings.ToLower(http.StatusText(e.Status)), CSRF: csrf, Problem: e.Message})
}

// dashboard wraps a page: off without a token, the login form until signed
// in. Its errors are the dashboard's error page (dashboardError).
func (s *Server) dashboard(h func(w http.ResponseWriter, r *http.Request) (string, *page, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.operatorToken == "" {
			s.dashboardError(w, r, "", errOperatorOff)
			return
		}
		in, ok := s.dashboardAuth(w, r)
		if !ok {
			return
		}
		if !in {
			s.render(w, r, http.StatusUnauthorized, "login-content", &page{Title: "log in"})
			return
		}
		content, p, err := h(w, r)
		if err != nil {
			s.dashboardError(w, r, s.derive("csrf"), err)
			return
		}
		p.CSRF = s.derive("csrf")
		s.render(w, r, http.StatusOK, content, p)
	}
}

func (s *Server) overviewPage(_ http.ResponseWriter, r *http.Request) (string, *page, error) {
	endpoints, err := delivery.FailingEndpoints(r.Context(), s.pool, 100)
	if err != nil {
		return "", nil, err
	}
	deliveries, err := delivery.RecentDeliveries(r.Context(), s.pool, delivery.StatusFailed, 100)
	if err != nil {
		return "", nil, err
	}
	return "overview-content", &page{Title: "operations", Endpoints: endpoints, Deliveries: deliveries}, nil
}

// retryWait is how long a delivery's page reloads itself after a Retry,
// waiting for the attempt to be recorded: a manual attempt is made at once
// unless its destination is paused or busy, and then the page stops asking.
const retryWait = 30 * time.Second

func (s *Server) deliveryPage(_ http.ResponseWriter, r *http.Request) (string, *page, error) {
	id := r.PathValue("id")
	d, err := delivery.GetDelivery(r.Context(), s.pool, nil, id) // the operator's: any merchant
	if err != nil {
		return "", nil, named(err, "delivery", id)
	}
	p := &page{Title: "delivery " + id, Delivery: d}
	// After a Retry the URL holds the attempt count the retry was queued at,
	// and until when to wait: the page shows the new attempt once it is
	// recorded, rather than the attempts there were when the button was hit.
	after, err1 := strconv.Atoi(r.URL.Query().Get("after_attempt"))
	until, err2 := strconv.ParseInt(r.URL.Query().Get("wait_until"), 10, 64)
	if err1 == nil && err2 == nil && d.AttemptCount <= after {
		if time.Now().Before(time.Unix(until, 0)) {
			p.Waiting, p.Refresh = "Waiting for attempt "+strconv.Itoa(after+1)+": this page reloads until it is recorded.", 1
		} else {
			p.Waiting = "Attempt " + strconv.Itoa(after+1) + " is not recorded yet: its destination may be paused or busy. Reload to check again."
		}
	}
	return "delivery-content", p, nil
}

// endpointPage shows an endpoint of any merchant with its statistics over
// ?window= (24h by default) as the merchant API reads them, and their charts.
// A window that is not one of them, or several, shows the default and says
// so (delivery.PageStatsWindow).
func (s *Server) endpointPage(_ http.ResponseWriter, r *http.Request) (string, *page, error) {
	id := r.PathValue("id")
	scope, err := delivery.EndpointScope(r.Context(), s.pool, id)
	if err != nil {
		return "", nil, named(err, "webhook_endpoint", id)
	}
	e, err := delivery.Get(r.Context(), s.pool, scope, id)
	if err != nil {
		return "", nil, named(err, "webhook_endpoint", id)
	}
	window, ok := delivery.PageStatsWindow(r.URL.Query()["window"])
	stats, err := delivery.EndpointStats(r.Context(), s.pool, scope, id, window, time.Now())
	if err != nil {
		return "", nil, named(err, "webhook_endpoint", id)
	}
	p := &page{Title: "endpoint " + id, Endpoint: e, Scope: scope, Stats: stats,
		Windows:  []string{delivery.StatsWindowHour, delivery.StatsWindowDay, delivery.StatsWindowWeek},
		Outcomes: chart.Outcomes(stats.Series, stats.Window), Latency: chart.Latency(stats.Series, stats.Window)}
	if !ok {
		p.Flash = "?window= must be 1h, 24h or 7d, given once: showing " + window + "."
	}
	return "endpoint-content", p, nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.operatorToken == "" {
		s.dashboardError(w, r, "", errOperatorOff)
		return
	}
	// The form is read before the token takes a place of the failure limit,
	// which a slow upload would otherwise hold.
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := r.PostFormValue("token")
	a, err := s.beginAuth(w, r)
	if err != nil {
		s.dashboardError(w, r, "", err)
		return
	}
	matches := s.operatorTokenMatches(token)
	a.done(!matches)
	if !matches {
		s.render(w, r, http.StatusUnauthorized, "login-content", &page{Title: "log in", Flash: "That is not the operator token."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.session(time.Now()), Path: "/dashboard",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionLength / time.Second),
	})
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// dashboardAction wraps a form POST: signed in, with the CSRF field, then
// redirected to where the action says with a message. What stops it there
// is the dashboard's error page (dashboardError).
func (s *Server) dashboardAction(h func(r *http.Request) (to, msg string, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.operatorToken == "" {
			s.dashboardError(w, r, "", errOperatorOff)
			return
		}
		in, ok := s.dashboardAuth(w, r)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !in || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.derive("csrf"))) {
			s.dashboardError(w, r, "", &Error{Status: http.StatusForbidden, Type: "authentication_error", Code: "csrf_failed",
				Message: "Sign in again: this form is stale or did not come from the dashboard."})
			return
		}
		to, msg, err := h(r)
		if err != nil {
			// What the API would answer with a 4xx the operator reads on the
			// dashboard; anything else is a 500, rendered and logged as such.
			if e := asAPIError(err); e.Status >= http.StatusInternalServerError {
				s.dashboardError(w, r, s.derive("csrf"), err)
				return
			}
			to, msg = "/dashboard", asAPIError(err).Message
		}
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		http.Redirect(w, r, to+sep+"msg="+url.QueryEscape(msg), http.StatusSeeOther)
	}
}

// logout expires the session cookie. A stolen copy still works until its
// 12 h are over or the token changes: sessions are not stored server-side.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/dashboard",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/dashboard?msg="+url.QueryEscape("Logged out."), http.StatusSeeOther)
}

func (s *Server) dashboardRetry(r *http.Request) (string, string, error) {
	id := r.PathValue("id")
	var attempts int
	err := pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		d, err := delivery.GetDelivery(r.Context(), tx, nil, id)
		if err != nil {
			return err
		}
		attempts = d.AttemptCount
		return s.dispatcher.RetryByID(r.Context(), tx, id)
	})
	to := "/dashboard/deliveries/" + id + "?after_attempt=" + strconv.Itoa(attempts) +
		"&wait_until=" + strconv.FormatInt(time.Now().Add(retryWait).Unix(), 10)
	return to, "Retry queued for " + id + ".", named(err, "delivery", id)
}

func (s *Server) dashboardEnable(r *http.Request) (string, string, error) {
	id := r.PathValue("id")
	err := pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error { return delivery.Enable(r.Context(), tx, id) })
	return "/dashboard", "Endpoint " + id + " enabled.", named(err, "webhook_endpoint", id)
}

func (s *Server) dashboardRecover(r *http.Request) (string, string, error) {
	id := r.PathValue("id")
	hours, err := strconv.Atoi(r.PostFormValue("hours"))
	if err != nil || hours < 1 || hours > 14*24 {
		return "", "", invalid("hours", "hours must be a whole number from 1 to 336 (14 days)")
	}
	dryRun := r.PostFormValue("dry_run") != "false"
	now := time.Now()
	var rec *delivery.Recovery
	err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) (err error) {
		rec, err = s.dispatcher.Recover(r.Context(), tx, nil, id, now.Add(-time.Duration(hours)*time.Hour), now, dryRun)
		return err
	})
	if err != nil {
		return "", "", named(err, "webhook_endpoint", id)
	}
	if !dryRun && rec.Retried < rec.Matched {
		return "/dashboard", "Recovery under way: " + strconv.Itoa(rec.Retried) + " of " + deliveries(rec.Matched, "failed") +
			" to " + id + " queued now, the rest 1,000 at a time.", nil
	}
	if !dryRun {
		return "/dashboard", "Recovery queued: " + deliveries(rec.Retried, "") + " to " + id + " will be retried.", nil
	}
	// The count is the recovery's own: the failed deliveries of the window.
	// Pending ones, often the many beside it, are said apart, so that a 0
	// reads as what it is.
	pending, err := delivery.PendingDeliveries(r.Context(), s.pool, id)
	if err != nil {
		return "", "", err
	}
	msg := "Dry run: " + deliveries(rec.Matched, "failed") + " to " + id + " created in the last " + strconv.Itoa(hours) +
		" h would be retried."
	if rec.Matched == 0 {
		msg = "Dry run: no failed delivery to " + id + " was created in the last " + strconv.Itoa(hours) +
			" h, so Recover would retry none."
	}
	if pending > 0 {
		msg += " " + delivery.Capped(pending) + " pending " + plural(pending, "delivery is", "deliveries are") +
			" still being retried automatically; recovery retries failed ones."
	}
	return "/dashboard", msg, nil
}

// deliveries is "1 failed delivery", "2 failed deliveries", "3 deliveries".
func deliveries(n int, kind string) string {
	if kind != "" {
		kind += " "
	}
	return strconv.Itoa(n) + " " + kind + plural(n, "delivery", "deliveries")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// named turns ErrNotFound into an error naming the missing object.
func named(err error, what, id string) error {
	if errors.Is(err, events.ErrNotFound) {
		return notFound(what, id)
	}
	return err
}
