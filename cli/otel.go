package cli

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracerFromEnv builds the TracerProvider of `laneway server` from the
// standard OTEL_* variables, or returns nil (tracing off) when none asks
// for traces: tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it
// is unset and an OTLP endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The exporter speaks OTLP over HTTP
// (http/protobuf); it reads its endpoint, headers, timeout and TLS settings
// from the same variables, the SDK reads the sampler (OTEL_TRACES_SAMPLER)
// and the batch settings (OTEL_BSP_*), and the resource takes
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service.name defaults to
// "laneway").
func tracerFromEnv(ctx context.Context, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return nil, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q is not supported by laneway server: set it to \"otlp\" (OTLP over HTTP) or \"none\"", exp)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(name)); p != "" {
			if p != "http/protobuf" {
				return nil, fmt.Errorf("%s=%q is not supported by laneway server: it exports OTLP over HTTP; set it to \"http/protobuf\" or unset it (point the endpoint at the collector's HTTP port, usually 4318)", name, p)
			}
			break // the traces-specific variable wins
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (from OTEL_EXPORTER_OTLP_*): %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", "laneway")), resource.Environment())
	if err != nil {
		res = resource.Environment()
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}
