package envelope

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func sampleEnvelope() Envelope {
	return Envelope{
		Data: json.RawMessage(`{"customer_id":"42","name":"Zoë","tier":"gold","credit":1500.0}`),
		Metadata: Metadata{
			Headers: Headers{
				ID:     "0f8fad5b-d9cb-469f-a165-70867728950e",
				Time:   "2024-05-01T12:00:00.123456Z",
				Type:   "Shop.CustomerUpdated.v2",
				Stream: "customer-42",
			},
			Domain: Domain{
				Class:          ClassEvent,
				StreamCategory: "customer",
				Priority:       -50,
				Version:        2,
				SequenceID:     "3.1",
				CorrelationID:  "corr-1",
				CausationID:    "cause-1",
			},
		},
	}
}

// entry returns sampleEnvelope encoded as a generic map, for tests that
// break one member at a time.
func entryMap(t *testing.T) map[string]any {
	t.Helper()
	b, err := Encode(sampleEnvelope())
	require.NoError(t, err)
	// UseNumber: through float64, 1500.0 would come back as 1500, which
	// Python reads as an int, and the checksum would change.
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func sub(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func TestEncodeFillsSpecVersionAndChecksum(t *testing.T) {
	t.Parallel()
	e := sampleEnvelope()
	b, err := Encode(e)
	require.NoError(t, err)

	want := e
	want.Metadata.Envelope = Integrity{SpecVersion: "1.0", Checksum: mustChecksum(t, e.Data)}
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, want, got, "(-want +got)")

	// The wire shape the reference system reads and writes.
	m := entryMap(t)
	require.Equal(t, "1.0", sub(m, "metadata", "envelope")["specversion"])
	require.Len(t, sub(m, "metadata", "envelope")["checksum"], 64)
	require.Equal(t, "EVENT", sub(m, "metadata", "domain")["kind"])
	require.Equal(t, json.Number("-50"), sub(m, "metadata", "domain")["priority"])
	require.NotContains(t, m, "_dlq_metadata")
}

func mustChecksum(t *testing.T, data json.RawMessage) string {
	t.Helper()
	s, err := Checksum(data)
	require.NoError(t, err)
	return s
}

func TestEncodeKeepsHTMLCharacters(t *testing.T) {
	t.Parallel()
	e := sampleEnvelope()
	e.Data = json.RawMessage(`{"html":"<b>&</b>"}`)
	e.Metadata.Headers.Stream = "a<b>"
	b, err := Encode(e)
	require.NoError(t, err)
	require.Contains(t, string(b), `"html":"<b>&</b>"`)
	require.Contains(t, string(b), `"stream":"a<b>"`)
}

func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Envelope)
		wantErr string
	}{
		{"no data", func(e *Envelope) { e.Data = nil }, "missing data"},
		{"null data", func(e *Envelope) { e.Data = json.RawMessage("null") }, "missing data"},
		{"array data", func(e *Envelope) { e.Data = json.RawMessage("[1]") }, "data is not a JSON object"},
		{"invalid data", func(e *Envelope) { e.Data = json.RawMessage(`{"a":}`) }, "invalid JSON"},
		{"no id", func(e *Envelope) { e.Metadata.Headers.ID = "" }, "missing metadata.headers.id"},
		{"no type", func(e *Envelope) { e.Metadata.Headers.Type = "" }, "missing metadata.headers.type"},
		{"bad kind", func(e *Envelope) { e.Metadata.Domain.Class = "QUERY" }, `unknown kind "QUERY"`},
		{"stale checksum", func(e *Envelope) { e.Metadata.Envelope.Checksum = strings.Repeat("0", 64) }, "does not match the payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := sampleEnvelope()
			tc.mutate(&e)
			_, err := Encode(e)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestEncodeKeepsMatchingChecksum(t *testing.T) {
	t.Parallel()
	e := sampleEnvelope()
	e.Metadata.Envelope.Checksum = mustChecksum(t, e.Data)
	e.Metadata.Envelope.SpecVersion = "1.1"
	b, err := Encode(e)
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, e, got)
}

// TestDecodePythonEnvelope reads an entry written by Python's json.dumps (the
// reference's publish path, default separators, members Go does not model)
// whose checksum Python computed.
func TestDecodePythonEnvelope(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/python_envelope.json")
	require.NoError(t, err)
	got, err := Decode(raw)
	require.NoError(t, err)

	want := Metadata{
		Headers: Headers{
			ID:     "b6f2d7c4-1f0e-4d1a-9c1e-2f5a8f9d0e11",
			Time:   "2024-05-01T12:00:00.123456+00:00",
			Type:   "Shop.CustomerUpdated.v2",
			Stream: "shop::customer-42",
		},
		Envelope: Integrity{SpecVersion: "1.0", Checksum: "01bbef6abd99faec2ceb7eff747ae5d6c2de9eedd07411217bb86a261f18c0fb"},
		Domain: Domain{
			Class:          ClassEvent,
			StreamCategory: "shop::customer",
			Priority:       -50,
			Version:        2,
			SequenceID:     "3.1",
			CorrelationID:  "corr-1",
		},
	}
	require.Equal(t, want, got.Metadata, "(-want +got)")
	require.Nil(t, got.DLQ)
	// The payload is kept as written (compacted), big integers included.
	require.Contains(t, string(got.Data), `"big":123456789012345678901234567890`)
	require.Contains(t, string(got.Data), `"name":"Jos\u00e9 \ud83d\ude00"`)

	// Encoding it again keeps the checksum valid.
	again, err := Encode(got)
	require.NoError(t, err)
	got2, err := Decode(again)
	require.NoError(t, err)
	require.Equal(t, got, got2)
}

func TestDecodeAcceptsMissingChecksum(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"absent", "empty", "null", "no envelope"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := entryMap(t)
			integrity := sub(m, "metadata", "envelope")
			switch name {
			case "absent":
				delete(integrity, "checksum")
			case "empty":
				integrity["checksum"] = ""
			case "null":
				integrity["checksum"] = nil
			case "no envelope":
				delete(sub(m, "metadata"), "envelope")
			}
			got, err := Decode(mustJSON(t, m))
			require.NoError(t, err)
			require.Empty(t, got.Metadata.Envelope.Checksum)
		})
	}
}

func TestDecodeVersionForms(t *testing.T) {
	t.Parallel()
	for in, want := range map[any]int{float64(3): 3, "v3": 3, "3": 3, nil: 0} {
		m := entryMap(t)
		sub(m, "metadata", "domain")["version"] = in
		got, err := Decode(mustJSON(t, m))
		require.NoError(t, err, "version %v", in)
		require.Equal(t, want, got.Metadata.Domain.Version, "version %v", in)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     func(t *testing.T) []byte
		wantErr string
	}{
		{"empty", func(*testing.T) []byte { return nil }, "not JSON"},
		{"garbage", func(*testing.T) []byte { return []byte("hello world") }, "not JSON"},
		{"truncated", func(t *testing.T) []byte { b, _ := Encode(sampleEnvelope()); return b[:len(b)-1] }, "not JSON"},
		{"invalid UTF-8", func(*testing.T) []byte { return []byte("{\"data\":\"\xff\"}") }, "not valid UTF-8"},
		{"array", func(*testing.T) []byte { return []byte(`[{"data":{}}]`) }, "not a JSON object"},
		{"string", func(*testing.T) []byte { return []byte(`"data"`) }, "not a JSON object"},
		{"null", func(*testing.T) []byte { return []byte(`null`) }, "not a JSON object"},
		{"missing data", func(t *testing.T) []byte { m := entryMap(t); delete(m, "data"); return mustJSON(t, m) }, "missing data"},
		{"null data", func(t *testing.T) []byte { m := entryMap(t); m["data"] = nil; return mustJSON(t, m) }, "missing data"},
		{"string data", func(t *testing.T) []byte { m := entryMap(t); m["data"] = "x"; return mustJSON(t, m) }, "data is not a JSON object"},
		{"DATA in capitals", func(t *testing.T) []byte {
			m := entryMap(t)
			m["DATA"] = m["data"]
			delete(m, "data")
			return mustJSON(t, m)
		}, "missing data"},
		{"missing metadata", func(t *testing.T) []byte { m := entryMap(t); delete(m, "metadata"); return mustJSON(t, m) }, "missing metadata"},
		{"null metadata", func(t *testing.T) []byte { m := entryMap(t); m["metadata"] = nil; return mustJSON(t, m) }, "missing metadata"},
		{"metadata not object", func(t *testing.T) []byte { m := entryMap(t); m["metadata"] = 7; return mustJSON(t, m) }, "metadata is not a JSON object"},
		{"missing headers", func(t *testing.T) []byte {
			m := entryMap(t)
			delete(sub(m, "metadata"), "headers")
			return mustJSON(t, m)
		}, "missing metadata.headers.id"},
		{"missing id", func(t *testing.T) []byte {
			m := entryMap(t)
			delete(sub(m, "metadata", "headers"), "id")
			return mustJSON(t, m)
		}, "missing metadata.headers.id"},
		{"ID in capitals", func(t *testing.T) []byte {
			m := entryMap(t)
			h := sub(m, "metadata", "headers")
			h["ID"] = h["id"]
			delete(h, "id")
			return mustJSON(t, m)
		}, "missing metadata.headers.id"},
		{"missing type", func(t *testing.T) []byte {
			m := entryMap(t)
			delete(sub(m, "metadata", "headers"), "type")
			return mustJSON(t, m)
		}, "missing metadata.headers.type"},
		{"type not string", func(t *testing.T) []byte {
			m := entryMap(t)
			sub(m, "metadata", "headers")["type"] = 12
			return mustJSON(t, m)
		}, "metadata.headers.type is not a string"},
		{"unknown kind", func(t *testing.T) []byte {
			m := entryMap(t)
			sub(m, "metadata", "domain")["kind"] = "QUERY"
			return mustJSON(t, m)
		}, `unknown kind "QUERY"`},
		{"missing kind", func(t *testing.T) []byte {
			m := entryMap(t)
			delete(sub(m, "metadata", "domain"), "kind")
			return mustJSON(t, m)
		}, `unknown kind ""`},
		{"priority not integer", func(t *testing.T) []byte {
			m := entryMap(t)
			sub(m, "metadata", "domain")["priority"] = 1.5
			return mustJSON(t, m)
		}, "metadata.domain.priority is not an integer"},
		{"version garbage", func(t *testing.T) []byte {
			m := entryMap(t)
			sub(m, "metadata", "domain")["version"] = "vX"
			return mustJSON(t, m)
		}, "metadata.domain.version is not an integer"},
		{"checksum mismatch", func(t *testing.T) []byte {
			m := entryMap(t)
			sub(m, "data")["tier"] = "silver"
			return mustJSON(t, m)
		}, "checksum mismatch: envelope says " + mustChecksumStatic(sampleEnvelope().Data) + ", payload hashes to "},
		{"payload float overflow", func(t *testing.T) []byte {
			b, _ := Encode(sampleEnvelope())
			return []byte(strings.Replace(string(b), `"credit":1500.0`, `"credit":1e999`, 1))
		}, "does not fit a float64"},
		{"bad dlq metadata", func(t *testing.T) []byte {
			m := entryMap(t)
			m["_dlq_metadata"] = map[string]any{"retry_count": "three"}
			return mustJSON(t, m)
		}, "_dlq_metadata.retry_count is not an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tc.raw(t))
			require.ErrorContains(t, err, tc.wantErr)
			var de *DecodeError
			require.True(t, errors.As(err, &de), "want *DecodeError, got %T", err)
			require.NotEmpty(t, de.Reason)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func mustChecksumStatic(data json.RawMessage) string {
	s, err := Checksum(data)
	if err != nil {
		panic(err)
	}
	return s
}

func TestDecodeCompactsData(t *testing.T) {
	t.Parallel()
	m := entryMap(t)
	b := mustJSON(t, m)
	spaced := strings.Replace(string(b), `"data":{`, `"data":  {  `, 1)
	require.NotEqual(t, string(b), spaced)
	got, err := Decode([]byte(spaced))
	require.NoError(t, err)
	require.Equal(t, `{"credit":1500.0,"customer_id":"42","name":"Zoë","tier":"gold"}`, string(got.Data))
}

func TestParseType(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in, domain, name string
		version          int
	}{
		{"Shop.CustomerUpdated.v2", "Shop", "CustomerUpdated", 2},
		{"Shop.CustomerUpdated.v1", "Shop", "CustomerUpdated", 1},
		{"acme.shop.CustomerUpdated.v12", "acme.shop", "CustomerUpdated", 12},
	}
	for _, tc := range valid {
		d, n, v, err := ParseType(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, []any{tc.domain, tc.name, tc.version}, []any{d, n, v}, tc.in)
		require.Equal(t, tc.in, TypeString(d, n, v))
	}
	invalid := []string{
		"", "CustomerUpdated", "CustomerUpdated.v1", "Shop.CustomerUpdated", "Shop.CustomerUpdated.1",
		"Shop.CustomerUpdated.v0", "Shop.CustomerUpdated.v01", "Shop.CustomerUpdated.v-1", "Shop.CustomerUpdated.v+1",
		"Shop.CustomerUpdated.v", "Shop.CustomerUpdated.V1", ".CustomerUpdated.v1", "Shop..v1",
		"Shop.CustomerUpdated.v99999999999999999999", "Shop.CustomerUpdated.v1x",
	}
	for _, in := range invalid {
		_, _, _, err := ParseType(in)
		require.Error(t, err, "%q", in)
		require.Contains(t, err.Error(), in)
	}
}

func TestIsObject(t *testing.T) {
	for in, want := range map[string]bool{
		`{}`: true, " \t\r\n{\"a\":1}": true, ``: false, ` `: false, `[]`: false, `"{"`: false,
		"\v{}": false, `null`: false, " x{": false,
	} {
		require.Equal(t, want, isObject([]byte(in)), "%q", in)
	}
}
