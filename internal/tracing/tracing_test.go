package tracing

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/laneway/laneway/internal/envelope"
)

func TestNewNilIsOff(t *testing.T) {
	require.Nil(t, New(nil))
}

// TestContextRoundTrip: a span context written into an envelope by
// ParentOf comes back from SpanContextOf with its ids, sampling flag and
// tracestate, marked remote.
func TestContextRoundTrip(t *testing.T) {
	ts, err := trace.ParseTraceState("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	require.NoError(t, err)
	for _, sampled := range []bool{true, false} {
		cfg := trace.SpanContextConfig{
			TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			SpanID:     trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
			TraceState: ts,
		}
		if sampled {
			cfg.TraceFlags = trace.FlagsSampled
		}
		sc := trace.NewSpanContext(cfg)
		tp, ext := ParentOf(trace.ContextWithSpanContext(context.Background(), sc))
		require.NotNil(t, tp)
		require.Equal(t, sc.TraceID().String(), tp.TraceID)
		require.Equal(t, sc.SpanID().String(), tp.ParentID)
		require.Equal(t, sampled, tp.Sampled)
		require.Equal(t, ts.String(), ext.TraceState)

		got := SpanContextOf(&envelope.Metadata{Headers: envelope.Headers{TraceParent: tp}, Extensions: ext})
		require.True(t, got.Equal(sc.WithRemote(true)), "got %v", got)
	}
}

func TestParentOfWithoutSpan(t *testing.T) {
	tp, ext := ParentOf(context.Background())
	require.Nil(t, tp)
	require.Nil(t, ext)
}

// TestSpanContextOfInvalid: ids that are not W3C hex ids (or all zero)
// give no parent instead of a broken one; a bad tracestate is dropped but
// the ids hold.
func TestSpanContextOfInvalid(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for name, tp := range map[string]*envelope.TraceParent{
		"nil":           nil,
		"empty":         {},
		"short trace":   {TraceID: "4bf9", ParentID: sid},
		"zero trace":    {TraceID: "00000000000000000000000000000000", ParentID: sid},
		"no span":       {TraceID: tid},
		"uppercase hex": {TraceID: "4BF92F3577B34DA6A3CE929D0E0E4736", ParentID: sid},
	} {
		t.Run(name, func(t *testing.T) {
			require.False(t, SpanContextOf(&envelope.Metadata{Headers: envelope.Headers{TraceParent: tp}}).IsValid())
		})
	}
	sc := SpanContextOf(&envelope.Metadata{
		Headers:    envelope.Headers{TraceParent: &envelope.TraceParent{TraceID: tid, ParentID: sid}},
		Extensions: &envelope.Extensions{TraceState: "not a tracestate!"},
	})
	require.True(t, sc.IsValid())
	require.Zero(t, sc.TraceState().Len())
}

func TestSpanContextOfRow(t *testing.T) {
	sc := spanContextOfRow([]byte(`{"headers":{"id":"1","traceparent":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_id":"00f067aa0ba902b7","sampled":true}},"extensions":{"laneway_tracestate":"congo=t61rcWkgMzE"}}`))
	require.True(t, sc.IsValid())
	require.True(t, sc.IsSampled())
	require.Equal(t, "congo=t61rcWkgMzE", sc.TraceState().String())
	require.False(t, spanContextOfRow([]byte(`{"headers":{"id":"1"}}`)).IsValid())
	require.False(t, spanContextOfRow([]byte(`not json`)).IsValid())
}
