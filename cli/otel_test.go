package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestTracerFromEnvOff: without an OTLP endpoint or exporter, or when
// turned off explicitly, the server does not trace.
func TestTracerFromEnvOff(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"nothing set":      {},
		"exporter none":    {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
		"sdk disabled":     {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
		"only the service": {"OTEL_SERVICE_NAME": "shop"},
	} {
		t.Run(name, func(t *testing.T) {
			tp, err := tracerFromEnv(context.Background(), envOf(env))
			require.NoError(t, err)
			require.Nil(t, tp)
		})
	}
}

// TestTracerFromEnvRejects: a setting the server cannot honour is an error
// naming the variable and what to set instead.
func TestTracerFromEnvRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"zipkin exporter": {map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, []string{"OTEL_TRACES_EXPORTER", `"zipkin"`, `"otlp"`}},
		"grpc protocol": {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			[]string{"OTEL_EXPORTER_OTLP_PROTOCOL", `"grpc"`, "http/protobuf", "4318"}},
	} {
		t.Run(name, func(t *testing.T) {
			tp, err := tracerFromEnv(context.Background(), envOf(tc.env))
			require.Nil(t, tp)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestTracerFromEnvExports: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans
// reach the collector over OTLP/HTTP (a local HTTP server stands in for it).
func TestTracerFromEnvExports(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && len(body) > 0 {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	// The exporter reads its endpoint from the process environment.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	ctx := context.Background()
	tp, err := tracerFromEnv(ctx, envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}))
	require.NoError(t, err)
	require.NotNil(t, tp)
	_, span := tp.Tracer("test").Start(ctx, "one")
	span.End()
	require.NoError(t, tp.Shutdown(ctx))
	require.Equal(t, int64(1), posts.Load())
}
