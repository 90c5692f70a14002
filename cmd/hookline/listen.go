package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/api/client"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

const (
	// listenForwardTimeout bounds one forward to the local receiver.
	listenForwardTimeout = 30 * time.Second
	// listenSilence is how long the stream may send nothing, not even its
	// keep-alive comment (every 15 s), before it counts as dropped.
	listenSilence = 45 * time.Second
	// listenMaxBackoff is the longest wait between reconnections.
	listenMaxBackoff = 10 * time.Second
	listenTimeFormat = "2006-01-02 15:04:05"
)

// listener is one `hookline listen` session.
type listener struct {
	api, key, forwardTo string
	types               []string
	secret              string
	out, log            io.Writer
	client              *http.Client // to the receiver
	stream              *http.Client // to hookline
	lastID              string       // the last event forwarded (or tried)
}

// listenCommand is `hookline listen`: it runs until ctx ends (SIGINT), which
// is success, and needs no database, only the API and a key.
func (a *app) listenCommand() *cobra.Command {
	var forwardTo, only, api, key string
	cmd := &cobra.Command{
		Use:   "listen --forward-to URL [--events t1,t2] [--api URL] [--api-key sk_test_…]",
		Short: "Forward the API key's new events to a local URL, signed with a secret made for the session",
		Long: `Streams the API key's new events (GET /v1/events/stream) and forwards each one
to URL, signed (Standard Webhooks) with a signing secret made for this session,
which it prints first. It reconnects after a drop and resumes where it stopped.
The key may come from HOOKLINE_API_KEY instead. ^C ends it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				key = a.getenv("HOOKLINE_API_KEY")
			}
			l := &listener{
				api: strings.TrimRight(api, "/"), key: key, forwardTo: forwardTo, secret: events.NewWebhookSecret(), out: a.stdout, log: a.stderr,
				client: &http.Client{Timeout: listenForwardTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
				stream: &http.Client{},
			}
			if msg := l.check(only); msg != "" {
				return usagef(cmd, "%s", msg)
			}
			a.started = true // from here on, a failure is not the command line's
			return l.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&forwardTo, "forward-to", "", "the URL each event is POSTed to, such as http://localhost:3000/webhooks")
	cmd.Flags().StringVar(&only, "events", "", "comma-separated event types to forward (default: all)")
	cmd.Flags().StringVar(&api, "api", "http://127.0.0.1:8080", "hookline's API")
	cmd.Flags().StringVar(&key, "api-key", "", "an API key, sk_test_… or sk_live_… (default: HOOKLINE_API_KEY)")
	return cmd
}

// check validates the command line, and says what is wrong with it, naming
// the flag at fault ("" when nothing is).
func (l *listener) check(only string) string {
	switch {
	case l.forwardTo == "":
		return "--forward-to is required: the URL to POST each event to, such as http://localhost:3000/webhooks"
	case !strings.HasPrefix(l.key, "sk_test_") && !strings.HasPrefix(l.key, "sk_live_"):
		return "--api-key (or HOOKLINE_API_KEY) must be an API key, sk_test_… or sk_live_…"
	}
	for flagName, raw := range map[string]string{"--forward-to": l.forwardTo, "--api": l.api} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return flagName + " must be an http or https URL"
		}
	}
	if only != "" {
		for t := range strings.SplitSeq(only, ",") {
			t = strings.TrimSpace(t)
			if _, ok := events.Lookup(events.EventType(t)); !ok {
				return fmt.Sprintf("--events: %q is not an event type of GET /v1/event_types", t)
			}
			l.types = append(l.types, t)
		}
	}
	return ""
}

// errFatal marks an answer that reconnecting cannot change (a bad key, a
// refused parameter): listen stops.
type errFatal struct{ error }

// run connects, forwards, and reconnects after every drop, waiting longer
// each time the connection fails (up to listenMaxBackoff), until ctx ends.
func (l *listener) run(ctx context.Context) error {
	ready := false
	backoff := time.Second
	for {
		connected, err := l.session(ctx, func() {
			if !ready {
				fmt.Fprintf(l.out, "Ready. Your webhook signing secret is %s (^C to quit)\n", l.secret)
				ready = true
			} else {
				fmt.Fprintf(l.log, "%s Reconnected; resuming after %s.\n", time.Now().Format(listenTimeFormat), cmp.Or(l.lastID, "the last event"))
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		var fatal errFatal
		if errors.As(err, &fatal) {
			return fatal.error
		}
		if connected {
			backoff = time.Second
		}
		wait := backoff
		var later *retryLater
		if errors.As(err, &later) {
			wait = max(wait, later.after)
		}
		fmt.Fprintf(l.log, "%s Stream lost (%v); reconnecting in %v.\n", time.Now().Format(listenTimeFormat), err, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, listenMaxBackoff)
	}
}

// retryLater is an answer that says when to come back (429, 503).
type retryLater struct {
	status int
	after  time.Duration
}

func (e *retryLater) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

// session opens the stream (after the last event forwarded, if any), calls
// onOpen once it is open, and forwards its events until it ends. It says
// whether the stream opened.
func (l *listener) session(ctx context.Context, onOpen func()) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api, err := client.NewClient(l.api, client.WithHTTPClient(l.stream),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+l.key)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("User-Agent", "hookline-listen/"+delivery.Version)
			return nil
		}))
	if err != nil {
		return false, errFatal{err}
	}
	params := &client.StreamEventsParams{}
	if len(l.types) > 0 {
		params.Types = new(strings.Join(l.types, ","))
	}
	if l.lastID != "" {
		params.LastEventID = new(l.lastID)
	}
	res, err := api.StreamEvents(ctx, params)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, answerError(res)
	}
	onOpen()

	// Silence (not even a keep-alive) for listenSilence: the connection is
	// gone without having said so.
	alive := time.AfterFunc(listenSilence, cancel)
	defer alive.Stop()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var typ, id string
	var data strings.Builder
	for sc.Scan() {
		alive.Reset(listenSilence)
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data.Len() > 0 {
				l.forward(ctx, typ, id, []byte(data.String()))
			} else if id != "" {
				l.lastID = id // the stream's starting place: resume from there
			}
			typ, id = "", ""
			data.Reset()
		case field == "event":
			typ = value
		case field == "id":
			id = value
		case field == "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, io.ErrUnexpectedEOF
}

// answerError reads a refused stream's error: fatal unless waiting can
// change it.
func answerError(res *http.Response) error {
	var body client.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	_ = json.Unmarshal(b, &body)
	msg := fmt.Sprintf("hookline answered %d: %s", res.StatusCode, cmp.Or(body.Error.Message, strings.TrimSpace(string(b))))
	switch {
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		after, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		return &retryLater{status: res.StatusCode, after: time.Duration(after) * time.Second}
	default:
		return errFatal{errors.New(msg)}
	}
}

// forward POSTs one event's envelope to the receiver, signed with the
// session's secret as hookline signs a delivery, and prints both legs.
func (l *listener) forward(ctx context.Context, typ, id string, body []byte) {
	fmt.Fprintf(l.out, "%s --> %s [%s]\n", time.Now().Format(listenTimeFormat), typ, id)
	l.lastID = id
	status, err := l.post(ctx, id, body)
	now := time.Now().Format(listenTimeFormat)
	if ctx.Err() != nil {
		return // stopping (^C), or the stream dropped: nothing to report
	}
	if err != nil {
		fmt.Fprintf(l.out, "%s <-- [ERROR] POST %s [%s]: %v\n", now, l.forwardTo, id, err)
		return
	}
	fmt.Fprintf(l.out, "%s <-- [%d] POST %s [%s]\n", now, status, l.forwardTo, id)
}

func (l *listener) post(ctx context.Context, id string, body []byte) (int, error) {
	now := time.Now()
	sig, err := delivery.Sign(l.secret, id, now, body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.forwardTo, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookline/"+delivery.Version)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	res, err := l.client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}
