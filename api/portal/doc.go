// Package portal is the merchant portal (contract §7): server-rendered pages
// where a merchant manages their webhook endpoints, browses the event
// catalog and their deliveries, retries them and reads each endpoint's
// statistics. The API mounts it at /portal/ (api/server.go) and mints its
// sessions (POST /v1/portal_sessions, CreateSession).
//
// A session starts from a link whose token (random, stored as its SHA-256,
// spent by its first use, valid for SessionLength) is swapped at
// /portal/start for an HttpOnly session cookie (also stored hashed), and the
// browser is sent on without the token. Every page then finds its session by
// the cookie's hash and shows only that session's merchant and mode, until
// the session ends at its expiry or the merchant logs out (the layout's Log
// out: the session's end becomes now, and the cookie is expired). Pages
// are html/template with the templates and one stylesheet embedded; no page
// runs script. Every response carries a strict CSP (frame-ancestors from
// Config.FrameAncestors), no-store and no-referrer; every form a CSRF token
// derived from the session's cookie, and every POST must pass
// http.CrossOriginProtection too.
//
// The pages act through the functions the REST API uses (delivery.Endpoints'
// Check/Create, CheckUpdate/Update and RotateSecret, delivery.Delete,
// Dispatcher.SendTestEvent and Retry, the lists, delivery.EndpointStats), so
// their rules and effects are the API's; the domain's refusals are shown
// beside the form field they name, and each form spends from the rate limit
// of the session's API key (Config.Limit), as the API request would. Secrets
// (a new endpoint's, a rotation's) are shown in the answer to the POST that
// made them, never in a URL, and those two forms act once (onceForm): a
// reload of that answer creates or rotates nothing more.
package portal
