package portal

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// Config is what the portal needs from the process.
type Config struct {
	Pool       *pgxpool.Pool
	Endpoints  *delivery.Endpoints
	Dispatcher *delivery.Dispatcher
	Service    *events.Service
	Logger     *slog.Logger
	// FrameAncestors are the origins that may show the portal in a frame
	// (HOOKLINE_PORTAL_FRAME_ANCESTORS, checked by CheckFrameAncestor);
	// none by default.
	FrameAncestors []string
	// TrustedProxies are the proxies whose X-Forwarded-Proto says whether
	// the browser's connection is https (HOOKLINE_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// Admit runs before a request's token or cookie is looked up. For a
	// client address past the limit of failed authentications it returns no
	// done and how long until the address may try again (the portal answers
	// its 429 page); else the done it returns is told whether the lookup
	// failed (an unknown token or cookie), which counts towards that limit
	// like a wrong API key.
	Admit func(r *http.Request) (done func(failed bool), retryAfter time.Duration, err error)
	// Limit takes a token from the API's rate limit of the scope's key
	// (merchant and mode), or says how long until one is free: every form
	// the portal acts on spends from the same bucket as the API requests it
	// stands for, so the portal is no way round the limit.
	Limit func(scope events.Scope) (retryAfter time.Duration, ok bool)
	// Once runs do in tx unless the scope's form key was already used: then
	// it returns what the first run returned (replayed true, result "" when
	// the key was used with another form) and does nothing. The API's
	// idempotency keys (api/idempotency.go) back it, so it holds across
	// processes and restarts; see onceForm.
	Once func(ctx context.Context, tx pgx.Tx, scope events.Scope, form, key string, do func() (string, error)) (result string, replayed bool, err error)
	// PublicURL is where browsers reach hookline (HOOKLINE_PUBLIC_URL, such
	// as https://hooks.example.com), the base of every portal link; empty,
	// the origin the API request that creates the link reached.
	PublicURL string
	// Production (HOOKLINE_ENV=production) treats every browser connection
	// as https: production serves browsers over https only (behind a proxy
	// hookline may not be told about), so the cookie is always Secure and
	// a link built without PublicURL is https.
	Production bool
}

// Portal is the merchant portal's handler, mounted at /portal/ by the API's
// route table.
type Portal struct {
	cfg   Config
	mux   *http.ServeMux
	csp   string
	cop   *http.CrossOriginProtection
	pages map[string]*template.Template
}

//go:embed templates/*.html static/portal.css
var files embed.FS

// cookieName is the session cookie's; its path is /portal.
const cookieName = "hookline_portal"

// New returns the portal with its routes.
func New(cfg Config) *Portal {
	ancestors := "'none'"
	if len(cfg.FrameAncestors) > 0 {
		ancestors = strings.Join(cfg.FrameAncestors, " ")
	}
	p := &Portal{
		cfg: cfg,
		mux: http.NewServeMux(),
		csp: "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors " +
			ancestors,
		cop:   http.NewCrossOriginProtection(),
		pages: parsePages(),
	}
	p.routes()
	return p
}

func (p *Portal) routes() {
	p.mux.HandleFunc("GET /portal/start", p.start)
	p.mux.HandleFunc("POST /portal/logout", p.logout)
	p.mux.HandleFunc("GET /portal/static/portal.css", p.stylesheet)
	p.mux.HandleFunc("GET /portal/{$}", p.page(func(w http.ResponseWriter, r *http.Request, _ *session) error {
		http.Redirect(w, r, "/portal/endpoints", http.StatusSeeOther)
		return nil
	}))

	p.mux.HandleFunc("GET /portal/endpoints", p.page(p.endpointsPage))
	p.mux.HandleFunc("GET /portal/endpoints/new", p.page(p.newEndpointPage))
	p.mux.HandleFunc("POST /portal/endpoints", p.action(p.createEndpoint))
	p.mux.HandleFunc("GET /portal/endpoints/{id}", p.page(p.endpointPage))
	p.mux.HandleFunc("GET /portal/endpoints/{id}/edit", p.page(p.editEndpointPage))
	p.mux.HandleFunc("POST /portal/endpoints/{id}", p.action(p.updateEndpoint))
	p.mux.HandleFunc("POST /portal/endpoints/{id}/status", p.action(p.setStatus))
	p.mux.HandleFunc("POST /portal/endpoints/{id}/rotate", p.action(p.rotateSecret))
	p.mux.HandleFunc("POST /portal/endpoints/{id}/test", p.action(p.sendTestEvent))
	p.mux.HandleFunc("GET /portal/endpoints/{id}/delete", p.page(p.deleteEndpointPage))
	p.mux.HandleFunc("POST /portal/endpoints/{id}/delete", p.action(p.deleteEndpoint))

	p.mux.HandleFunc("GET /portal/events", p.page(p.catalogPage))
	p.mux.HandleFunc("GET /portal/events/{type}", p.page(p.eventTypePage))

	p.mux.HandleFunc("GET /portal/deliveries", p.page(p.deliveriesPage))
	p.mux.HandleFunc("GET /portal/deliveries/{id}", p.page(p.deliveryPage))
	p.mux.HandleFunc("POST /portal/deliveries/{id}/retry", p.action(p.retryDelivery))

	p.mux.HandleFunc("/portal/", p.page(func(http.ResponseWriter, *http.Request, *session) error {
		return errNotFound
	}))
}

// ServeHTTP serves the portal's routes, every response with its security
// headers: the strict CSP (no script of any origin), no caching, no
// referrer (a link out of the portal never carries its URL), and frames only
// from the configured origins.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	if len(p.cfg.FrameAncestors) == 0 {
		h.Set("X-Frame-Options", "DENY")
	}
	if !readableURL(r) {
		p.fail(w, r, nil, &fieldError{field: "url", message: "This address is not valid: it must be UTF-8 text, without the NUL character (%00)."})
		return
	}
	p.mux.ServeHTTP(w, r)
}

// readableURL reports whether a request's path and query are text
// Postgres can hold (events.IsText), as the API requires of its own: every
// id and cursor reaches a query, which would fail on NUL or bytes that are
// not UTF-8.
func readableURL(r *http.Request) bool {
	if !events.IsText(r.URL.Path) {
		return false
	}
	for name, values := range r.URL.Query() {
		if !events.IsText(name + strings.Join(values, "")) {
			return false
		}
	}
	return true
}

func (p *Portal) stylesheet(w http.ResponseWriter, r *http.Request) {
	css, _ := fs.ReadFile(files, "static/portal.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write(css)
}

// secure reports whether the browser reaches the portal over https: always
// in production and when PublicURL, where browsers reach hookline, is
// https (TLS then ends at a proxy hookline may not be told about); else the
// request's own TLS, or the X-Forwarded-Proto of a trusted proxy in front.
// The session cookie is Secure then, and only then (plain http on a
// developer's machine keeps it).
func (p *Portal) secure(r *http.Request) bool {
	if r.TLS != nil || p.cfg.Production || strings.HasPrefix(p.cfg.PublicURL, "https://") {
		return true
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, prefix := range p.cfg.TrustedProxies {
		if prefix.Contains(peer.Addr().Unmap()) {
			proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
			return strings.EqualFold(strings.TrimSpace(proto), "https")
		}
	}
	return false
}

// Link is the URL that opens a session: the token, spent by its first use,
// at PublicURL, or at the host r (the API request creating the session)
// reached, over https when the connection is (secure: always in
// production, so production never hands out a plain http link).
func (p *Portal) Link(r *http.Request, token string) string {
	base := strings.TrimSuffix(p.cfg.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if p.secure(r) {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/portal/start?token=" + url.QueryEscape(token)
}

// start exchanges a link's token for a session cookie and sends the
// browser on to the endpoints, without the token in the URL. A link works
// once: a second use, an expired link or an unknown one gets a page saying
// so. The cookie is HttpOnly, Secure over https, SameSite=Lax; when the
// portal may be framed by other origins (FrameAncestors) and the connection
// is https it is SameSite=None and Partitioned (CHIPS) instead, since a
// browser sends no Lax cookie to a cross-site frame: the CSRF token and the
// cross-origin check guard the forms either way.
func (p *Portal) start(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		p.fail(w, r, nil, errLinkUnknown)
		return
	}
	done, ok := p.admit(w, r)
	if !ok {
		return
	}
	cookie, expires, err := exchange(r.Context(), p.cfg.Pool, token)
	done(errors.Is(err, errLinkUnknown))
	if errors.Is(err, errLinkUsed) {
		// The browser that used the link, come back to it, is offered its
		// session; any other gets the notice alone.
		n := notices[errLinkUsed]
		if c, err := r.Cookie(cookieName); err == nil {
			if s, err := lookup(r.Context(), p.cfg.Pool, c.Value); err == nil {
				n.Continue, n.ReturnURL = "/portal/endpoints", s.returnURL
			}
		}
		p.render(w, r, nil, http.StatusGone, "notice", &view{Title: n.Heading, Data: n})
		return
	}
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, p.sessionCookie(r, cookie, expires))
	http.Redirect(w, r, "/portal/endpoints", http.StatusSeeOther)
}

// sessionCookie is the session cookie holding value until expires, or,
// for value "", the cookie that deletes it: the browser matches the two by
// name, path and partition, so they are made alike.
func (p *Portal) sessionCookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: cookieName, Value: value, Path: "/portal", HttpOnly: true, Secure: p.secure(r),
		SameSite: http.SameSiteLaxMode, Expires: expires}
	if value == "" {
		c.Expires, c.MaxAge = time.Time{}, -1
	}
	if c.Secure && len(p.cfg.FrameAncestors) > 0 {
		c.SameSite, c.Partitioned = http.SameSiteNoneMode, true
	}
	return c
}

// logout ends the browser's session (the layout's Log out): from the
// portal's origin and with the session's CSRF token, like every form, it
// ends the session server-side (logOut), so that no copy of the cookie
// opens it again, expires the cookie, and answers a page saying so with the
// way back to the merchant's application. A session already ended is ended
// again the same way; a browser with no session left (logged out in
// another tab) gets the same page, as there is nothing to end. Leaving must
// always work, so the CSRF token, an HMAC of the cookie, is checked without
// the database, and an address over the failed-authentication limit (one
// behind the merchant's own NAT) is logged out too (leave).
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	if err := p.cop.Check(r); err != nil {
		p.fail(w, r, nil, errForbidden)
		return
	}
	n := loggedOut
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte((&session{cookie: c.Value}).csrf())) {
			p.fail(w, r, nil, errForbidden)
			return
		}
		if n, err = p.leave(r, c.Value); err != nil {
			p.fail(w, r, nil, err)
			return
		}
	}
	http.SetCookie(w, p.sessionCookie(r, "", time.Time{}))
	p.render(w, r, nil, http.StatusOK, "notice", &view{Title: n.Heading, Data: n})
}

// leave ends the session of a logging-out cookie and returns the page to
// answer. The lookup is a cookie's like any other (Config.Admit): a value
// no session has counts as a failed authentication, since anyone can make
// a cookie's CSRF token, and an address over the limit looks nothing up,
// so guessing through Log out costs no database query either. That address
// gets its cookie expired all the same, and a page saying that the session
// itself ends at its expiry, as it could not be checked.
func (p *Portal) leave(r *http.Request, cookie string) (noticeView, error) {
	done, _, err := p.cfg.Admit(r)
	switch {
	case err != nil:
		return noticeView{}, err
	case done == nil:
		return loggedOutUnchecked, nil
	}
	s, err := lookup(r.Context(), p.cfg.Pool, cookie)
	done(errors.Is(err, errSessionAbsent))
	switch {
	case errors.Is(err, errSessionAbsent):
		return loggedOut, nil
	case err != nil && !errors.Is(err, errSessionEnded):
		return noticeView{}, err
	}
	if err := logOut(r.Context(), p.cfg.Pool, s.id); err != nil {
		return noticeView{}, err
	}
	n := loggedOut
	n.ReturnURL = s.returnURL
	return n, nil
}

// admit is Config.Admit, answering the portal's page itself when the
// client's address is refused (or Admit fails); ok false then.
func (p *Portal) admit(w http.ResponseWriter, r *http.Request) (done func(failed bool), ok bool) {
	done, wait, err := p.cfg.Admit(r)
	switch {
	case err != nil:
		p.fail(w, r, nil, err)
		return nil, false
	case done == nil:
		p.fail(w, r, nil, &tooManyError{wait: wait, notice: notices[errTooManyFailures]})
		return nil, false
	}
	return done, true
}

// authenticate returns the request's live session. A cookie that no
// session has counts as a failed authentication (Config.Admit); none at all
// does not.
func (p *Portal) authenticate(w http.ResponseWriter, r *http.Request) (s *session, answered bool, err error) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil, false, errSessionAbsent
	}
	done, ok := p.admit(w, r)
	if !ok {
		return nil, true, errSessionAbsent
	}
	s, err = lookup(r.Context(), p.cfg.Pool, c.Value)
	done(errors.Is(err, errSessionAbsent))
	return s, false, err
}

// csrf is the session's CSRF token: an HMAC of a label under the session
// cookie's value, which only the session's browser holds (HttpOnly) and the
// pages it is sent carry.
func (s *session) csrf() string {
	mac := hmac.New(sha256.New, []byte(s.cookie))
	mac.Write([]byte("hookline portal csrf"))
	return hex.EncodeToString(mac.Sum(nil))
}

// handler is a portal page or action: it writes its response, or returns
// the error whose page the portal renders.
type handler func(w http.ResponseWriter, r *http.Request, s *session) error

// page wraps a GET: signed in, or a page saying the session has ended.
func (p *Portal) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, answered, err := p.authenticate(w, r)
		if answered {
			return
		}
		if err == nil {
			err = h(w, r, s)
		}
		if err != nil {
			p.fail(w, r, s, err)
		}
	}
}

// errForbidden is a form that did not come from the session's own pages.
var errForbidden = errors.New("portal form refused")

// maxForm bounds a form's body: the largest, an endpoint's, is a few KiB.
const maxForm = 64 << 10

// action wraps a form POST: from the portal's own origin (Sec-Fetch-Site or
// Origin, http.CrossOriginProtection), signed in, and carrying the
// session's CSRF token; anything else is refused with 403 before it acts.
// A form that passes takes a token from the rate limit of the session's
// API key (Config.Limit; 429 past it), and its values must be text
// (checkForm; 400 naming the field).
func (p *Portal) action(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := p.cop.Check(r); err != nil {
			p.fail(w, r, nil, errForbidden)
			return
		}
		s, answered, err := p.authenticate(w, r)
		if answered {
			return
		}
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			p.fail(w, r, s, &fieldError{field: "form", message: "This form is too large or malformed."})
			return
		}
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.csrf())) {
			p.fail(w, r, s, errForbidden)
			return
		}
		if wait, ok := p.cfg.Limit(s.scope); !ok {
			p.fail(w, r, s, &tooManyError{wait: wait, notice: notices[errRateLimited]})
			return
		}
		if err := checkForm(r.PostForm); err != nil {
			p.fail(w, r, s, err)
			return
		}
		if err := h(w, r, s); err != nil {
			p.fail(w, r, s, err)
		}
	}
}

// checkForm refuses, naming the field, a form value Postgres's text cannot
// hold (NUL, bytes that are not UTF-8; events.IsText), as the API refuses
// them in JSON: it would fail the statement that stores it.
func checkForm(form url.Values) error {
	for _, name := range slices.Sorted(maps.Keys(form)) {
		for _, v := range form[name] {
			if !events.IsText(name) || !events.IsText(v) {
				field := formField(name)
				switch {
				case !events.IsText(name):
					field = "form"
				case name == "events" || name == "subscribe":
					field = "enabled_events"
				}
				return &fieldError{field: field, message: fieldLabel(field) + " must be UTF-8 text, without the NUL character."}
			}
		}
	}
	return nil
}

// fieldLabel is how a page names a form field.
func fieldLabel(field string) string {
	switch field {
	case "url":
		return "The URL"
	case "form":
		return "The form"
	}
	return "The " + strings.ReplaceAll(field, "_", " ")
}

// tooManyError is a 429: the client's address past the limit of failed
// authentications, or the session's API key past its rate limit.
type tooManyError struct {
	wait   time.Duration
	notice noticeView
}

func (e *tooManyError) Error() string { return "too many requests: " + e.notice.Heading }

// Reasons for a 429 page.
var (
	errTooManyFailures = errors.New("too many failed authentications")
	errRateLimited     = errors.New("rate limited")
)

// view is what every page's template gets.
type view struct {
	Title string
	// Nav is the navigation entry the page belongs to.
	Nav     string
	Session *sessionView
	CSRF    string
	// Once is a fresh random key for the forms that must act once (create,
	// rotate): see onceForm.
	Once  string
	Flash string
	// Refresh, when not 0, reloads the page after that many seconds (a
	// delivery waiting for the attempt a retry queued; no JavaScript).
	Refresh int
	Data    any
}

// sessionView is the header's part of a session.
type sessionView struct {
	MerchantName string
	Livemode     bool
	ExpiresAt    time.Time
	ReturnURL    string
	ReturnHost   string
}

func newSessionView(s *session) *sessionView {
	if s == nil {
		return nil
	}
	v := &sessionView{MerchantName: s.merchantName, Livemode: s.scope.Livemode, ExpiresAt: s.expiresAt, ReturnURL: s.returnURL}
	if u, err := url.Parse(s.returnURL); err == nil {
		v.ReturnHost = u.Host
	}
	return v
}

// flashes are the messages an action leaves for the page it redirects to,
// named in the URL by key: the URL never carries text of its own.
var flashes = map[string]string{
	"saved":    "Endpoint saved.",
	"enabled":  "Endpoint enabled: it receives new events again.",
	"disabled": "Endpoint disabled: it receives no new events until you enable it.",
	"deleted":  "Endpoint deleted.",
	"test":     "Test event sent.",
	"retried":  "Retry queued.",
}

// render writes a page of the portal with status.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, v *view) {
	t, ok := p.pages[name]
	if !ok {
		panic("portal: no template " + name)
	}
	v.Session = newSessionView(s)
	if s != nil {
		v.CSRF, v.Once = s.csrf(), rand.Text()
	}
	if v.Flash == "" {
		v.Flash = flashes[r.URL.Query().Get("flash")]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "render portal page", slog.String("page", name), slog.String("error", err.Error()))
	}
}

// noticeView is one of the pages that say why the portal cannot be shown.
type noticeView struct {
	Heading string
	Body    string
	// ReturnURL, when set, is where the merchant opens a new session.
	ReturnURL string
	// Continue, when set, is the portal of the browser's live session (a
	// used link opened again from the browser that used it).
	Continue string
}

// loggedOut is the page a logout answers.
var loggedOut = noticeView{Heading: "You are logged out", Body: "Your portal session has ended, and this browser no longer holds it. " +
	"To open the portal again, go back to the application that sent you here."}

// loggedOutUnchecked is the page a logout answers from an address over the
// failed-authentication limit, which could not end the session itself.
var loggedOutUnchecked = noticeView{Heading: "You are logged out", Body: "This browser no longer holds your portal session. " +
	"Too many links or sessions that were not valid came from your address, so the portal could not check the session itself: " +
	"it stays valid until it expires, at most an hour after it opened. " +
	"To open the portal again, go back to the application that sent you here."}

var notices = map[error]noticeView{
	errLinkUsed: {Heading: "This link has already been used", Body: "Portal links work once. Go back to the application that sent you here " +
		"to open the portal again."},
	errLinkExpired: {Heading: "This link has expired", Body: "Portal links are valid for one hour. Go back to the application that sent " +
		"you here to open the portal again."},
	errLinkUnknown: {Heading: "This link is not valid", Body: "Check that you opened the whole link, or go back to the application that " +
		"sent you here to open the portal again."},
	errSessionEnded: {Heading: "Your session has ended", Body: "Portal sessions last one hour. Go back to the application that sent you " +
		"here to open the portal again."},
	errSessionAbsent: {Heading: "Sign in through your application", Body: "The webhook portal opens from a link your application creates. " +
		"Go back to it to open the portal."},
	errForbidden: {Heading: "This form has expired", Body: "The form did not come from this portal session. Reload the page and try again."},
	errNotFound:  {Heading: "Not found", Body: "There is nothing here, or it belongs to another account."},
	errTooManyFailures: {Heading: "Too many attempts", Body: "Too many links or sessions that were not valid came from your address. " +
		"Wait a minute, then open the portal again from your application."},
	errRateLimited: {Heading: "Too many requests", Body: "Your account has sent too many requests in a short time. " +
		"Wait a few seconds, then try again."},
	errSubmitted: {Heading: "This form was already submitted", Body: "Its first submission was carried out, and a secret it made " +
		"was shown then, once: it is not shown again. If you did not copy it, rotate the secret."},
}

// errNotFound is a page or object the session cannot see: missing, or
// another merchant's or mode's.
var errNotFound = errors.New("not found")

// fail renders the page of an error: a known reason's notice, a field
// error's message, or a 500 whose cause is logged and never shown.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status := http.StatusInternalServerError
	n := noticeView{Heading: "Something went wrong", Body: "The portal could not do that. It has been logged; please try again."}
	var fe *fieldError
	var many *tooManyError
	switch {
	case errors.Is(err, events.ErrNotFound) || errors.Is(err, errNotFound):
		status, n = http.StatusNotFound, notices[errNotFound]
	case errors.Is(err, errForbidden):
		status, n = http.StatusForbidden, notices[errForbidden]
	case errors.Is(err, errLinkUsed), errors.Is(err, errLinkExpired), errors.Is(err, errLinkUnknown):
		status, n = http.StatusGone, notices[err]
		if errors.Is(err, errLinkUnknown) {
			status = http.StatusNotFound
		}
	case errors.Is(err, errSessionEnded), errors.Is(err, errSessionAbsent):
		status, n = http.StatusUnauthorized, notices[err]
		if s != nil {
			n.ReturnURL = s.returnURL
		}
		s = nil // the header shows no session
	case errors.As(err, &many):
		status, n = http.StatusTooManyRequests, many.notice
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(many.wait.Seconds())))))
	case errors.As(err, &fe):
		status, n = http.StatusBadRequest, noticeView{Heading: "That did not work", Body: fe.message}
	default:
		if d := domainMessage(err); d != nil {
			status, n = http.StatusBadRequest, noticeView{Heading: "That did not work", Body: d.message}
			break
		}
		p.cfg.Logger.ErrorContext(r.Context(), "portal request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	p.render(w, r, s, status, "notice", &view{Title: n.Heading, Data: n})
}

// fieldError is a form value the domain (or the form's own parsing)
// refused: shown beside its field.
type fieldError struct {
	field   string
	message string
}

func (e *fieldError) Error() string { return e.field + ": " + e.message }

// domainMessage turns the domain's refusals (InvalidError, LimitError,
// StateError) into a field and a sentence for the form; nil for anything
// else.
func domainMessage(err error) *fieldError {
	var invalid *events.InvalidError
	var limit *events.LimitError
	var state *events.StateError
	switch {
	case errors.As(err, &invalid):
		msg := sentence(invalid.Message)
		// A header's error names the header, unless its message does.
		if name, ok := strings.CutPrefix(invalid.Param, "headers."); ok && !strings.HasPrefix(invalid.Message, name+" ") {
			msg = name + ": " + msg
		}
		return &fieldError{field: formField(invalid.Param), message: msg}
	case errors.As(err, &limit):
		return &fieldError{field: "form", message: limit.Message}
	case errors.As(err, &state):
		return &fieldError{field: "form", message: sentence(state.Message)}
	}
	return nil
}

// formField is the form field of a domain error's param.
func formField(param string) string {
	for _, f := range []string{"url", "description", "enabled_events", "headers", "rate_limit", "signature_scheme",
		"grace_period_seconds", "type"} {
		if param == f || strings.HasPrefix(param, f+"[") || strings.HasPrefix(param, f+".") {
			return f
		}
	}
	return "form"
}

// sentence capitalises a domain message ("must be an https URL") and ends
// it with a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"when":  func(unix int64) string { return time.Unix(unix, 0).UTC().Format("2 Jan 2006, 15:04:05 UTC") },
		"clock": func(t time.Time) string { return t.UTC().Format("15:04 UTC") },
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return fmt.Sprintf("%d %s", n, one)
			}
			return fmt.Sprintf("%d %s", n, many)
		},
		"deref":     deref,
		"title":     title,
		"allEvents": func(types []string) bool { return slices.Contains(types, delivery.AllEvents) },
		"reason":    func(r string) string { return cmp.Or(disabledReasons[r], r) },
		"capped":    delivery.Capped,
		"percent": func(rate *float64) string {
			if rate == nil {
				return "–"
			}
			return strconv.FormatFloat(*rate*100, 'f', 1, 64) + " %"
		},
		"ms": func(v *int) string {
			if v == nil {
				return "–"
			}
			return strconv.Itoa(*v) + " ms"
		},
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(files, "templates/layout.html", name))
	}
	return pages
}

// deref is the value a pointer field points at, or nil: templates compare
// and format values, not pointers.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer {
		return v
	}
	if rv.IsNil() {
		return nil
	}
	return rv.Elem().Interface()
}

// disabledReasons say why hookline disabled an endpoint.
var disabledReasons = map[string]string{
	delivery.DisabledGone:         "it answered 410 Gone",
	delivery.DisabledFailing:      "failing for 3 days",
	delivery.DisabledUnauthorized: "its token was refused",
}

// title capitalises a status for a badge: "failed" reads "Failed".
func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
