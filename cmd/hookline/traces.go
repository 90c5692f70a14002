package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strconv"
	"strings"

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
// OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*) from the process's environment.
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
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return tracesConfig{}, nil
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
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%s must be an http or https URL, such as http://localhost:4318, not %q", name, endpoint)
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
	return cfg, nil
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
// failures are logged at warn: a collector away costs spans, never a
// request or a delivery.
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
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The SDK reports what it cannot export to OpenTelemetry's global error
	// handler, which would otherwise print it with the log package.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("traces", slog.String("error", err.Error()))
	}))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res), sdktrace.WithSampler(cfg.Sampler)), nil
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
