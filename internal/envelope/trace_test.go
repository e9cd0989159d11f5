package envelope

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func tracedEnvelope() Envelope {
	e := sampleEnvelope()
	e.Data = []byte(`{"customer_id":"c-1","tier":"gold"}`)
	e.Metadata.Headers.TraceParent = &TraceParent{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", ParentID: "00f067aa0ba902b7", Sampled: true,
	}
	return e
}

// TestTraceParentRoundTrip: the trace context is written as the
// reference's headers.traceparent object, read back by both decoders, and
// leaves the checksum alone (it covers the payload only).
func TestTraceParentRoundTrip(t *testing.T) {
	plain := tracedEnvelope()
	plain.Metadata.Headers.TraceParent = nil
	plainRaw, err := Encode(plain)
	require.NoError(t, err)
	require.NotContains(t, string(plainRaw), "traceparent", "no trace context: the member stays absent")

	e := tracedEnvelope()
	raw, err := Encode(e)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"traceparent":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_id":"00f067aa0ba902b7","sampled":true}`)

	fast, ok := decodeFast(raw)
	require.True(t, ok, "a traced entry the engine writes takes the fast path: %s", raw)
	slow, err := decodeSlow(raw)
	require.NoError(t, err)
	require.Equal(t, slow, fast)
	require.Equal(t, e.Metadata.Headers.TraceParent, fast.Metadata.Headers.TraceParent)

	plainDec, err := Decode(plainRaw)
	require.NoError(t, err)
	require.Equal(t, plainDec.Metadata.Envelope.Checksum, fast.Metadata.Envelope.Checksum)
}

// TestTraceStateInExtensions: tracestate has no member in the reference's
// traceparent object; it travels as metadata.extensions.laneway_tracestate
// next to other extensions, which stay untouched.
func TestTraceStateInExtensions(t *testing.T) {
	e := tracedEnvelope()
	e.Metadata.Extensions = &Extensions{TraceState: "congo=t61rcWkgMzE"}
	raw, err := Encode(e)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"extensions":{"laneway_tracestate":"congo=t61rcWkgMzE"}`)
	got, err := Decode(raw)
	require.NoError(t, err)
	require.Equal(t, "congo=t61rcWkgMzE", got.Metadata.Extensions.TraceState)

	withReplay := strings.Replace(string(raw), `"extensions":{`, `"extensions":{"laneway_replay_group":"g",`, 1)
	got, err = Decode([]byte(withReplay))
	require.NoError(t, err)
	require.Equal(t, "g", got.Metadata.ReplayGroup)
	require.Equal(t, "congo=t61rcWkgMzE", got.Metadata.Extensions.TraceState)
}

// TestTraceParentOtherShapesReadAsAbsent: the reference writes null, and a
// trace context of a shape we do not know is no reason to dead-letter a
// message, so every such entry decodes, without a trace context.
func TestTraceParentOtherShapesReadAsAbsent(t *testing.T) {
	raw, err := Encode(tracedEnvelope())
	require.NoError(t, err)
	const tp = `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_id":"00f067aa0ba902b7","sampled":true}`
	for _, other := range []string{
		`null`,
		`"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
		`{"trace_id":1,"parent_id":"00f067aa0ba902b7"}`,
		`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","sampled":"yes"}`,
		`[]`,
	} {
		t.Run(other, func(t *testing.T) {
			got, err := Decode([]byte(strings.Replace(string(raw), tp, other, 1)))
			require.NoError(t, err)
			require.Nil(t, got.Metadata.Headers.TraceParent)
		})
	}
	// Partial objects keep what they have (null members read as absent).
	got, err := Decode([]byte(strings.Replace(string(raw), tp, `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_id":null}`, 1)))
	require.NoError(t, err)
	require.Equal(t, &TraceParent{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}, got.Metadata.Headers.TraceParent)
}

// TestTraceParentPythonEnvelopeStillDecodes: an entry of the reference with
// "traceparent": null (and entries written before tracing existed) decode
// as before, with no trace context.
func TestTraceParentPythonEnvelopeStillDecodes(t *testing.T) {
	python, err := os.ReadFile("testdata/python_envelope.json")
	require.NoError(t, err)
	got, err := Decode(python)
	require.NoError(t, err)
	require.Nil(t, got.Metadata.Headers.TraceParent)
	require.Nil(t, got.Metadata.Extensions)
}

// BenchmarkDecodeEngineEntry decodes an entry as the engine writes it
// (canonical payload: the fast path), without and with a trace context.
func BenchmarkDecodeEngineEntry(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "untraced"
		if traced {
			name = "traced"
		}
		b.Run(name, func(b *testing.B) {
			e := sampleEnvelope()
			e.Data = []byte(`{"customer_id":"c-1","email":"a@example.com","tier":"gold"}`)
			if traced {
				e.Metadata.Headers.TraceParent = &TraceParent{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", ParentID: "00f067aa0ba902b7", Sampled: true}
			}
			raw, err := Encode(e)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := decodeFast(raw); !ok {
				b.Fatal("the entry should take the fast path")
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
