package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hookline/hookline/api/stream"
	"github.com/hookline/hookline/events"
)

const (
	// defaultKeepAlive is how often an idle stream sends a comment line, so
	// that proxies and load balancers keep its connection open.
	defaultKeepAlive = 15 * time.Second
	// streamWriteTimeout bounds each write to a stream: a client that stops
	// reading for that long loses its stream (and resumes with
	// Last-Event-ID).
	streamWriteTimeout = 30 * time.Second
	// streamBatch is how many events a stream reads from the log at a time.
	streamBatch = 100
)

// eventID is the shape of an event id, which a Last-Event-ID must have before
// it is looked up.
var eventID = regexp.MustCompile(`^evt_[0-9A-HJKMNP-TV-Z]{26}$`)

// streamEvents serves GET /v1/events/stream: the key's merchant and mode's
// new events as Server-Sent Events, each as `event: <type>`, `id: <evt id>`
// and `data: <envelope>`, in stream order (events.StreamCursor), optionally
// of the types in ?types=a,b. With Last-Event-ID it resumes after that event:
// the events since are sent first; without, it starts now, with the id of
// the last event before it as a message of its own. An idle stream sends a
// comment every keepAlive (15 s) and holds no database connection.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	scope, err := s.admit(w, r, s.authenticate)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	types, err := streamTypes(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	ctx := r.Context()
	var cursor events.StreamCursor
	last := r.Header.Get("Last-Event-ID")
	if last != "" {
		if !eventID.MatchString(last) {
			err = events.ErrNotFound // not even an id: not looked up
		} else {
			cursor, err = events.StreamCursorAt(ctx, s.pool, scope, last)
		}
		if errors.Is(err, events.ErrNotFound) {
			err = invalid("Last-Event-ID", "Last-Event-ID is not an event of this API key's account and mode (or it is older than the retention); reconnect without it to start from now.")
		}
		if err != nil {
			s.renderError(w, r, err)
			return
		}
	}
	st, err := s.streams.Open(ctx, scope)
	switch {
	case errors.Is(err, stream.ErrTooMany):
		w.Header().Set("Retry-After", "5")
		s.renderError(w, r, &Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "limit_reached", Param: "max_event_streams",
			Message: fmt.Sprintf("This API key already has %d event streams open (max_event_streams); close one first.", stream.MaxPerKey)})
		return
	case errors.Is(err, stream.ErrClosed):
		w.Header().Set("Retry-After", "1")
		s.renderError(w, r, &Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "shutting_down",
			Message: "This hookline process is stopping; reconnect."})
		return
	case err != nil:
		s.renderError(w, r, err)
		return
	}
	defer st.Close()
	var startID string // the last event before a new stream
	if last == "" {
		if cursor, startID, err = events.StreamStart(ctx, s.pool, scope); err != nil {
			s.renderError(w, r, err)
			return
		}
	}

	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for requests, not streams:
	// the read deadline would end the stream's context, so it goes, and
	// each write gets a deadline of its own.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: w, rc: rc}
	if startID != "" {
		// An id alone, which clients take as their last event id without
		// dispatching anything: resuming after it loses nothing, even if the
		// stream drops before its first event.
		out.write("id: " + startID + "\n\n")
	}
	out.flush()

	keepAlive := time.NewTicker(s.keepAlive)
	defer keepAlive.Stop()
	for out.err == nil {
		evts, err := events.ReadStream(ctx, s.pool, scope, cursor, streamBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.WarnContext(ctx, "event stream ended", slog.String("merchant_id", scope.MerchantID), slog.String("error", err.Error()))
			}
			return // the client resumes with Last-Event-ID
		}
		for _, e := range evts {
			cursor = e.Cursor
			if len(types) == 0 || slices.Contains(types, string(e.Type)) {
				out.event(e)
			}
		}
		out.flush()
		if len(evts) == streamBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-st.Done():
			return
		case <-st.Wake():
		case <-keepAlive.C:
			out.comment("keep-alive")
			out.flush()
		}
	}
}

// streamTypes reads ?types=a,b (event types of the catalog), refusing any
// other parameter.
func streamTypes(r *http.Request) ([]string, error) {
	q := r.URL.Query()
	for name := range q {
		if name != "types" {
			return nil, invalid(name, "Received unknown parameter: "+name)
		}
	}
	raw := q.Get("types")
	if raw == "" {
		return nil, nil
	}
	var types []string
	for t := range strings.SplitSeq(raw, ",") {
		t = strings.TrimSpace(t)
		if _, ok := events.Lookup(events.EventType(t)); !ok {
			return nil, invalid("types", fmt.Sprintf("types: %q is not an event type of GET /v1/event_types", t))
		}
		types = append(types, t)
	}
	return types, nil
}

// sseWriter writes Server-Sent Events, each write with its own deadline; its
// first error ends the stream.
type sseWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	err     error
	pending bool
}

func (o *sseWriter) write(s string) {
	if o.err != nil {
		return
	}
	if !o.pending {
		o.err = o.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		o.pending = true
	}
	if o.err == nil {
		_, o.err = io.WriteString(o.w, s)
	}
}

// event writes one event; data holds the envelope, one line (a payload is
// compact JSON, but a line break would otherwise end the message).
func (o *sseWriter) event(e events.StreamEvent) {
	var b strings.Builder
	b.WriteString("event: " + string(e.Type) + "\nid: " + e.ID + "\n")
	for line := range strings.SplitSeq(string(e.Payload), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	o.write(b.String())
}

// comment writes a comment line, which clients ignore.
func (o *sseWriter) comment(text string) { o.write(": " + text + "\n\n") }

func (o *sseWriter) flush() {
	if o.err == nil {
		o.err = o.rc.Flush()
	}
	o.pending = false
}
