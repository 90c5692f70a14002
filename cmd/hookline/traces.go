package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/delivery"
)

// tracesConfig is what the standard OpenTelemetry variables ask of hookline's
// traces (README, "Traces"). hookline reads these itself, to validate them
// at start with messages naming the variable; the SDK reads the others it
// knows (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*) from the process's environment,
// which checkSDKVariables validates first: the SDK would log a bad value
// (a header's, a vendor's API key, included) and go on without it.
type tracesConfig struct {
	// Endpoint is the URL spans are POSTed to; "" turns tracing off: no
	// exporter, no spans, nothing sent.
	Endpoint    string
	JSON        bool // http/json rather than http/protobuf
	ServiceName string
	Sampler     sdktrace.Sampler
}

// defaultTracesPath is where an OTLP/HTTP collector takes spans, below
// OTEL_EXPORTER_OTLP_ENDPOINT (the OTLP specification).
const defaultTracesPath = "v1/traces"

// loadTracesConfig reads the OpenTelemetry variables of traces. Tracing is on
// when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is
// set, unless OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none.
func loadTracesConfig(getenv func(string) string) (tracesConfig, error) {
	cfg := tracesConfig{ServiceName: getenv("OTEL_SERVICE_NAME")}
	switch disabled := strings.ToLower(strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))); disabled {
	case "true":
		return tracesConfig{}, nil
	case "", "false":
	default:
		return cfg, fmt.Errorf("OTEL_SDK_DISABLED must be true or false, not %q", disabled)
	}
	switch exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporter {
	case "", "otlp":
	case "none":
		return tracesConfig{}, nil
	default:
		return cfg, fmt.Errorf("OTEL_TRACES_EXPORTER must be otlp or none (hookline exports traces over OTLP/HTTP only), not %q", exporter)
	}
	name, base := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false
	endpoint := getenv(name)
	if endpoint == "" {
		name, base = "OTEL_EXPORTER_OTLP_ENDPOINT", true
		endpoint = getenv(name)
	}
	if endpoint == "" {
		return tracesConfig{}, nil
	}
	// The messages never quote the URL: it may hold credentials.
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return cfg, fmt.Errorf("%s must be an http or https URL, such as http://localhost:4318: it does not parse as a URL", name)
	case u.Scheme != "http" && u.Scheme != "https":
		return cfg, fmt.Errorf("%s must be an http or https URL, such as http://localhost:4318, not a URL of the scheme %q", name, u.Scheme)
	case u.Host == "":
		return cfg, fmt.Errorf("%s must be an http or https URL, such as http://localhost:4318: it names no host", name)
	}
	if base {
		// The signal's path goes below the base URL's.
		u.Path = path.Join("/", u.Path, defaultTracesPath)
	}
	cfg.Endpoint = u.String()

	name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocol := getenv(name)
	if protocol == "" {
		name = "OTEL_EXPORTER_OTLP_PROTOCOL"
		protocol = getenv(name)
	}
	switch protocol {
	case "", "http/protobuf":
	case "http/json":
		cfg.JSON = true
	default:
		return cfg, fmt.Errorf("%s must be http/protobuf (the default) or http/json: hookline exports traces over OTLP/HTTP, not %q", name, protocol)
	}
	if cfg.Sampler, err = sampler(getenv); err != nil {
		return cfg, err
	}
	if err := checkSDKVariables(getenv); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// checkSDKVariables refuses the values of the variables the SDK reads itself
// that it would ignore (logging them with its own logger, header values
// included) or that would cost every span (a queue of 0). Its messages name
// the variable and never quote a header's value or a file's content.
func checkSDKVariables(getenv func(string) string) error {
	for _, name := range []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} {
		// Untrimmed: the SDK reads OTEL_BSP_* so.
		if v := getenv(name); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n <= 0 {
				return fmt.Errorf("%s must be a whole number above 0 (milliseconds for a delay or a timeout), not %q", name, v)
			}
		}
	}
	for _, signal := range []string{"", "TRACES_"} {
		prefix := "OTEL_EXPORTER_OTLP_" + signal
		switch v := strings.TrimSpace(getenv(prefix + "COMPRESSION")); v {
		case "", "gzip", "none":
		default:
			return fmt.Errorf("%sCOMPRESSION must be gzip or none, not %q", prefix, v)
		}
		switch v := strings.ToLower(strings.TrimSpace(getenv(prefix + "INSECURE"))); v {
		case "", "true", "false":
		default:
			return fmt.Errorf("%sINSECURE must be true or false, not %q", prefix, v)
		}
		if err := checkHeaders(prefix+"HEADERS", getenv(prefix+"HEADERS")); err != nil {
			return err
		}
		if file := strings.TrimSpace(getenv(prefix + "CERTIFICATE")); file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("%sCERTIFICATE: %w", prefix, err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				return fmt.Errorf("%sCERTIFICATE must name a file of PEM certificates: %s holds none", prefix, file)
			}
		}
		certFile, keyFile := strings.TrimSpace(getenv(prefix+"CLIENT_CERTIFICATE")), strings.TrimSpace(getenv(prefix+"CLIENT_KEY"))
		if (certFile == "") != (keyFile == "") {
			return fmt.Errorf("%sCLIENT_CERTIFICATE and %sCLIENT_KEY go together: set both or neither", prefix, prefix)
		}
		if certFile != "" {
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				return fmt.Errorf("%sCLIENT_CERTIFICATE and %sCLIENT_KEY must name a PEM certificate and its key: %w", prefix, prefix, err)
			}
		}
	}
	return nil
}

// checkHeaders refuses a value of OTEL_EXPORTER_OTLP_HEADERS (named name)
// that is not a comma-separated list of name=value pairs, with names that
// are HTTP tokens and values, URL-decoded, that HTTP can carry. It names the
// pair at fault by its position only: values are credentials.
func checkHeaders(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return nil
	}
	for i, pair := range strings.Split(value, ",") {
		key, v, found := strings.Cut(pair, "=")
		if key = strings.TrimSpace(key); !found || !delivery.IsToken(key) {
			return fmt.Errorf("%s must be comma-separated name=value pairs (values URL-encoded): pair %d has no name or no =", name, i+1)
		}
		decoded, err := url.PathUnescape(v)
		if err != nil || strings.ContainsFunc(decoded, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return fmt.Errorf("%s must be comma-separated name=value pairs (values URL-encoded): the value of pair %d (%s) is not", name, i+1, key)
		}
	}
	return nil
}

// sampler is the sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// name; by default, parentbased_always_on: every trace. The parents that
// count are hookline's own (an attempt's is the span of the request that
// wrote its event), never a client's: a request's span is a new root.
func sampler(getenv func(string) string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, such as 0.25, not %q", arg)
		}
		ratio = r
	}
	switch name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))); name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio, not %q", name)
	}
}

// newTracerProvider returns the provider of hookline's spans, which a batch
// processor exports to cfg.Endpoint, or nil when tracing is off. Export
// failures are logged at warn, the first at once and then at most once a
// minute (exportFailures): a collector away costs spans, never a request or
// a delivery, nor a log flooded with a line per batch.
func newTracerProvider(ctx context.Context, cfg tracesConfig, logger *slog.Logger) (*sdktrace.TracerProvider, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
	if cfg.JSON {
		opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	}
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES's service.name,
	// which wins over hookline's default.
	detectors := []resource.Option{resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName("hookline"), semconv.ServiceVersion(delivery.Version)), resource.WithFromEnv()}
	if cfg.ServiceName != "" {
		detectors = append(detectors, resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)))
	}
	res, err := resource.New(ctx, detectors...)
	if err != nil {
		// Only OTEL_RESOURCE_ATTRIBUTES can fail; the SDK's error quotes the
		// pairs at fault, this one does not.
		return nil, errors.New("OTEL_RESOURCE_ATTRIBUTES must be comma-separated key=value pairs, values URL-encoded")
	}
	failures := &exportFailures{logger: logger, now: time.Now}
	// The SDK reports its other errors (a collector's partial success, say)
	// to OpenTelemetry's global error handler, which would otherwise print
	// them with the log package.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { failures.report(err, 0) }))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(&loggedExporter{SpanExporter: exporter, failures: failures}),
		sdktrace.WithResource(res), sdktrace.WithSampler(cfg.Sampler)), nil
}

// loggedExporter is a span exporter whose failures exportFailures logs,
// with the spans each cost.
type loggedExporter struct {
	sdktrace.SpanExporter
	failures *exportFailures
}

// ExportSpans exports a batch, and reports its failure itself: the batch
// processor, given the error, would pass it to the global handler without
// the number of spans lost.
func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.failures.report(err, len(spans))
	}
	return nil
}

// Shutdown shuts the exporter down, then logs the failures not yet logged.
func (e *loggedExporter) Shutdown(ctx context.Context) error {
	err := e.SpanExporter.Shutdown(ctx)
	e.failures.flush()
	return err
}

// exportLogEvery is how often, at most, failures to export are logged after
// the first.
const exportLogEvery = time.Minute

// exportFailures logs the failures of the trace exporter: the first at
// once, then at most one line every exportLogEvery, with the failures and
// the spans lost since the previous line. A collector refusing every batch
// (a wrong API key) would otherwise log a line per batch, several a second.
type exportFailures struct {
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	logged   time.Time // the last line's time; zero before the first
	failures int       // since the last line
	spans    int       // lost since the last line
	last     error     // the latest failure
}

// report counts a failure that lost spans spans (0: unknown, or none), and
// logs it and those before it unless a line went less than exportLogEvery
// ago.
func (f *exportFailures) report(err error, spans int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures, f.spans, f.last = f.failures+1, f.spans+spans, err
	now := f.now()
	if !f.logged.IsZero() && now.Sub(f.logged) < exportLogEvery {
		return
	}
	f.logged = now
	f.log()
}

// flush logs the failures not logged yet, if any (at shutdown).
func (f *exportFailures) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.log()
	}
}

// log writes the line of the failures counted, and starts counting anew.
// f.mu is held.
func (f *exportFailures) log() {
	f.logger.Warn("traces not exported", slog.String("error", f.last.Error()), slog.Int("failures", f.failures),
		slog.Int("spans_lost", f.spans))
	f.failures, f.spans = 0, 0
}

// tracer is the tracer of a package of hookline's (its instrumentation
// scope), or nil when tracing is off, which the packages read as "make no
// spans".
func (m *Main) tracer(pkg string) trace.Tracer {
	if m.traces == nil {
		return nil
	}
	return m.traces.Tracer("github.com/hookline/hookline/"+pkg, trace.WithInstrumentationVersion(delivery.Version))
}
