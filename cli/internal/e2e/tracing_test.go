package e2e

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/lanewayconfig"
)

// collector is a stand-in OTLP/HTTP collector: it decodes every export
// request and keeps the spans.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) named(name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			if v, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue); ok {
				return v.StringValue
			}
			return kv.GetValue().String()
		}
	}
	return ""
}

// TestServerExportsTraces: `laneway server` started with
// OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/HTTP, and the
// handlers it runs continue the trace of the Process call made in another
// process (this one), through the outbox and Redis.
func TestServerExportsTraces(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: export soon, not every 5 s
	t.Setenv("OTEL_SERVICE_NAME", "customers-engine")

	e := newEnv(t, envParams{Lanes: true})
	cfg, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: e.dir})
	require.NoError(t, err)
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
	ctx := context.Background()
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{TracerProvider: tp})
	require.NoError(t, err)
	defer app.Close()

	eng := e.startEngine()
	require.Contains(t, eng.stderr.String(), "tracing on")
	require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low),
		customers.RegisterCustomer{CustomerID: "t1", Name: "Traced", Email: "t1@example.com"}))
	ended := rec.Ended()
	require.Len(t, ended, 1)
	process := ended[0]

	require.Eventually(t, func() bool {
		return len(col.named("handle "+customers.ProjectorName)) == 1 && len(col.named("handle "+customers.NotificationName)) == 1
	}, wait, tick)
	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))

	traceID := process.SpanContext().TraceID()
	for _, h := range []string{customers.ProjectorName, customers.NotificationName} {
		s := col.named("handle " + h)[0]
		assert.Equal(t, hex.EncodeToString(traceID[:]), hex.EncodeToString(s.GetTraceId()), "%s continues the Process trace", h)
		sid := process.SpanContext().SpanID()
		assert.Equal(t, hex.EncodeToString(sid[:]), hex.EncodeToString(s.GetParentSpanId()), "%s is a child of Process", h)
		assert.Equal(t, "backfill", spanAttr(s, "laneway.lane"))
		assert.Equal(t, "customer:backfill", spanAttr(s, "laneway.stream"))
		assert.Equal(t, h, spanAttr(s, "laneway.handler"))
	}
	pub := col.named("publish customer:backfill")
	require.NotEmpty(t, pub)
	require.Len(t, pub[0].GetLinks(), 1)
	assert.Equal(t, hex.EncodeToString(traceID[:]), hex.EncodeToString(pub[0].GetLinks()[0].GetTraceId()))
}
