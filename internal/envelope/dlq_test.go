package envelope

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func sampleDLQ() DLQMetadata {
	return DLQMetadata{
		OriginalStream: "customer:backfill",
		OriginalID:     "1714560000000-0",
		ConsumerGroup:  "CustomerProjector",
		Consumer:       "CustomerProjector-host-12-abcdef",
		FailedAt:       "2024-05-01T12:00:01.5Z",
		RetryCount:     3,
		FailureReason:  "boom",
	}
}

func TestNewDLQAndStrip(t *testing.T) {
	t.Parallel()
	e := sampleEnvelope()
	b, err := NewDLQ(e, sampleDLQ())
	require.NoError(t, err)

	var m map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, map[string]any{
		"original_stream": "customer:backfill",
		"original_id":     "1714560000000-0",
		"consumer_group":  "CustomerProjector",
		"consumer":        "CustomerProjector-host-12-abcdef",
		"failed_at":       "2024-05-01T12:00:01.5Z",
		"retry_count":     float64(3),
		"failure_reason":  "boom",
	}, m["_dlq_metadata"])

	decoded, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, sampleDLQ(), *decoded.DLQ)

	orig, err := StripDLQ(b)
	require.NoError(t, err)
	want := e
	want.Metadata.Envelope = Integrity{SpecVersion: "1.0", Checksum: mustChecksum(t, e.Data)}
	require.Equal(t, want, orig, "(-want +got)")

	// Replaying the stripped envelope writes no _dlq_metadata.
	again, err := Encode(orig)
	require.NoError(t, err)
	require.NotContains(t, string(again), "_dlq_metadata")
}

func TestNewDLQReplacesEarlierMetadata(t *testing.T) {
	t.Parallel()
	first, err := NewDLQ(sampleEnvelope(), sampleDLQ())
	require.NoError(t, err)
	e, err := Decode(first)
	require.NoError(t, err)
	m := sampleDLQ()
	m.RetryCount = 9
	second, err := NewDLQ(e, m)
	require.NoError(t, err)
	got, err := Decode(second)
	require.NoError(t, err)
	require.Equal(t, int64(9), got.DLQ.RetryCount)
}

func TestFailureReasonTruncation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reason string
	}{
		{"ascii", strings.Repeat("x", 5000)},
		{"two-byte runes", strings.Repeat("é", 700)},
		{"three-byte runes", strings.Repeat("日", 500)},
		{"four-byte runes", strings.Repeat("😀", 400)},
		{"exactly the limit", strings.Repeat("a", MaxFailureReason)},
		{"invalid UTF-8 run", strings.Repeat("\xff", 2000)},
		{"invalid UTF-8 bytes", strings.Repeat("a\xff", 1000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := sampleDLQ()
			m.FailureReason = tc.reason
			b, err := NewDLQ(sampleEnvelope(), m)
			require.NoError(t, err)
			got, err := Decode(b)
			require.NoError(t, err)
			r := got.DLQ.FailureReason
			require.LessOrEqual(t, len(r), MaxFailureReason)
			require.True(t, utf8.ValidString(r))
			if valid := strings.ToValidUTF8(tc.reason, "\uFFFD"); len(valid) <= MaxFailureReason {
				require.Equal(t, valid, r)
			} else {
				require.True(t, strings.HasSuffix(r, truncatedMark), "truncation is marked: %q", r)
				require.Greater(t, len(r), MaxFailureReason-len(truncatedMark)-4, "cut no more than one rune early")
			}

			raw, err := NewDLQRaw("garbage", m)
			require.NoError(t, err)
			var entry rawDLQEntry
			require.NoError(t, json.Unmarshal(raw, &entry))
			require.Equal(t, r, entry.DLQ.FailureReason)
		})
	}
}

func TestNewDLQRawAndReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, wantKey string
	}{
		{"text", `not json at all <&>`, "raw"},
		{"json but not an envelope", `{"hello":"world"}`, "raw"},
		{"empty", ``, "raw"},
		{"binary", "\x00\xff\xfe garbage \xc3", "raw_base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := NewDLQRaw(tc.raw, sampleDLQ())
			require.NoError(t, err)

			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &m))
			require.Equal(t, "null", string(m["data"]))
			require.Equal(t, "null", string(m["metadata"]))
			require.Contains(t, m, tc.wantKey)
			require.Contains(t, m, "_dlq_metadata")

			_, err = Decode(b)
			require.ErrorIs(t, err, ErrMalformed, "a raw entry is not an envelope")
			_, err = StripDLQ(b)
			require.ErrorIs(t, err, ErrRawEntry)

			replay, err := ReplayPayload(b)
			require.NoError(t, err)
			require.Equal(t, []byte(tc.raw), replay, "replay re-publishes the original text verbatim")
		})
	}
}

func TestNewDLQFromEntryKeepsUnknownMembers(t *testing.T) {
	t.Parallel()
	// An entry written by the reference, with members Envelope does not model.
	e := sampleEnvelope()
	sum := mustChecksum(t, e.Data)
	original := `{"data":{"customer_id":"42","name":"Zoë","tier":"gold","credit":1500.0},` +
		`"metadata":{"headers":{"id":"x-1","type":"Shop.CustomerUpdated.v2","traceparent":{"trace_id":"t"}},` +
		`"envelope":{"specversion":"1.0","checksum":"` + sum + `"},"domain":{"kind":"EVENT","fqn":"shop.CustomerUpdated"},` +
		`"extensions":{"k":"v"}}}`

	b, err := NewDLQFromEntry([]byte(original), sampleDLQ())
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, sampleDLQ(), *got.DLQ)

	replay, err := ReplayPayload(b)
	require.NoError(t, err)
	require.JSONEq(t, original, string(replay))

	stripped, err := StripDLQ(b)
	require.NoError(t, err)
	require.Nil(t, stripped.DLQ)
	require.Equal(t, "x-1", stripped.Metadata.Headers.ID)

	// Not an object: falls back to the raw form.
	b, err = NewDLQFromEntry([]byte("[1,2"), sampleDLQ())
	require.NoError(t, err)
	replay, err = ReplayPayload(b)
	require.NoError(t, err)
	require.Equal(t, "[1,2", string(replay))
}

func TestReplayPayloadOfEnvelopeEntry(t *testing.T) {
	t.Parallel()
	b, err := NewDLQ(sampleEnvelope(), sampleDLQ())
	require.NoError(t, err)
	replay, err := ReplayPayload(b)
	require.NoError(t, err)
	require.NotContains(t, string(replay), "_dlq_metadata")
	got, err := Decode(replay)
	require.NoError(t, err)
	require.Nil(t, got.DLQ)
	require.Equal(t, sampleEnvelope().Metadata.Headers, got.Metadata.Headers)

	_, err = ReplayPayload([]byte("nope"))
	require.ErrorIs(t, err, ErrMalformed)
}
