package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// SessionLength is how long a portal link, and the session it opens, lasts.
const SessionLength = time.Hour

// NewSession is a minted portal session: the link's token, shown once in
// the API's response, and when the session ends.
type NewSession struct {
	Token     string
	ExpiresAt time.Time
}

// insertSession stores a new session; the token only as its SHA-256.
const insertSession = `insert into portal_sessions (id, merchant_id, livemode, token_hash, return_url, expires_at)
	values ($1, $2, $3, $4, $5, now() + $6::interval) returning expires_at`

// CreateSession mints a portal session for scope: a random token (130 bits,
// crypto/rand) that opens the portal for that merchant and mode until
// SessionLength has passed, stored only hashed. returnURL, checked by
// CheckReturnURL, is where the portal's "Back" link leads ("" for none).
func CreateSession(ctx context.Context, tx pgx.Tx, scope events.Scope, returnURL string) (*NewSession, error) {
	s := &NewSession{Token: rand.Text()}
	var ret *string
	if returnURL != "" {
		ret = &returnURL
	}
	err := tx.QueryRow(ctx, insertSession, events.NewID(events.PrefixPortalSession), scope.MerchantID, scope.Livemode,
		hash(s.Token), ret, SessionLength).Scan(&s.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("insert portal session: %w", err)
	}
	return s, nil
}

// CheckReturnURL validates a session's return_url: an absolute https URL
// without credentials, at most 2048 characters; in development (production
// false) also http on a loopback host (localhost, 127.0.0.1, [::1]), for a
// merchant's application running on the developer's machine.
func CheckReturnURL(raw string, production bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Hostname() == "" || u.Opaque != "" {
		return &events.InvalidError{Param: "return_url", Message: "must be an absolute https URL"}
	}
	if len(raw) > 2048 {
		return &events.InvalidError{Param: "return_url", Message: "must be at most 2048 characters"}
	}
	if u.User != nil {
		return &events.InvalidError{Param: "return_url", Message: "must not carry credentials"}
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && !production && loopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http" && !production:
		return &events.InvalidError{Param: "return_url", Message: "must be an https URL (http only for localhost, 127.0.0.1 or [::1] in development)"}
	default:
		return &events.InvalidError{Param: "return_url", Message: "must be an https URL"}
	}
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hash is what the table keeps of a token or a session cookie.
func hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// exchangeToken spends a link's token: once, before its session ends. It
// stores the session cookie's hash in the same statement, so two browsers
// racing with one link get one session between them.
const exchangeToken = `update portal_sessions set used_at = now(), session_hash = $2
	where token_hash = $1 and used_at is null and expires_at > now()
	returning expires_at`

// tokenState reads why a token was not exchanged: used, expired, or unknown
// (no row).
const tokenState = `select used_at is not null, expires_at <= now() from portal_sessions where token_hash = $1`

// Reasons a link or a session cookie opens nothing; each has its own page.
var (
	errLinkUsed      = errors.New("portal link already used")
	errLinkExpired   = errors.New("portal link expired")
	errLinkUnknown   = errors.New("portal link unknown")
	errSessionEnded  = errors.New("portal session ended")
	errSessionAbsent = errors.New("no portal session")
)

// exchange spends token and returns the value of the session cookie that
// replaces it and when the session ends, or why it cannot.
func exchange(ctx context.Context, db events.DB, token string) (string, time.Time, error) {
	cookie := rand.Text() + rand.Text()
	var expires time.Time
	err := db.QueryRow(ctx, exchangeToken, hash(token), hash(cookie)).Scan(&expires)
	if err == nil {
		return cookie, expires, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, fmt.Errorf("exchange portal token: %w", err)
	}
	return "", time.Time{}, spentToken(ctx, db, token)
}

// spentToken says why a token was not exchanged.
func spentToken(ctx context.Context, db events.DB, token string) error {
	var used, expired bool
	err := db.QueryRow(ctx, tokenState, hash(token)).Scan(&used, &expired)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return errLinkUnknown
	case err != nil:
		return fmt.Errorf("read portal token: %w", err)
	case used:
		return errLinkUsed
	case expired:
		return errLinkExpired
	}
	// Spent or expired between the two statements.
	return errLinkUsed
}

// session is a signed-in portal session: whose objects it shows, and the
// secret its CSRF tokens derive from.
type session struct {
	id           string
	scope        events.Scope
	merchantName string
	returnURL    string
	expiresAt    time.Time
	cookie       string
}

// findSession reads the session of a cookie's hash, with its merchant's
// name, whether or not it has ended (the last column tells, on the
// database's clock, as the exchange does).
const findSession = `select s.id, s.merchant_id, s.livemode, m.name, coalesce(s.return_url, ''), s.expires_at, s.expires_at > now()
	from portal_sessions s join merchants m on m.id = s.merchant_id where s.session_hash = $1`

// lookup returns the live session of a cookie's value, errSessionEnded
// for one that has ended (with its return URL, for the page that says so),
// or errSessionAbsent for a value no session has.
func lookup(ctx context.Context, db events.DB, cookie string) (*session, error) {
	s := &session{cookie: cookie}
	var live bool
	err := db.QueryRow(ctx, findSession, hash(cookie)).Scan(&s.id, &s.scope.MerchantID, &s.scope.Livemode,
		&s.merchantName, &s.returnURL, &s.expiresAt, &live)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, errSessionAbsent
	case err != nil:
		return nil, fmt.Errorf("find portal session: %w", err)
	case !live:
		return s, errSessionEnded
	}
	return s, nil
}

// endSession ends a session at once (Log out): its end is set to now, so
// the cookie, or a copy of it, finds an ended session from then on, as it
// would an hour later (the "session has ended" page, not a failed
// authentication of the client's address). The row stays, as every
// session's does until retention prunes it: the record of who opened the
// portal, and when it ended.
const endSession = `update portal_sessions set expires_at = least(expires_at, now()) where id = $1`

// logOut ends the session id (endSession).
func logOut(ctx context.Context, db events.DB, id string) error {
	if _, err := db.Exec(ctx, endSession, id); err != nil {
		return fmt.Errorf("end portal session: %w", err)
	}
	return nil
}
