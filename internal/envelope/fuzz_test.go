package envelope

import (
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func decodeSeeds(f *testing.F) {
	valid, err := Encode(sampleEnvelope())
	require.NoError(f, err)
	python, err := os.ReadFile("testdata/python_envelope.json")
	require.NoError(f, err)
	dlq, err := NewDLQ(sampleEnvelope(), sampleDLQ())
	require.NoError(f, err)
	rawDLQ, err := NewDLQRaw("garbage", sampleDLQ())
	require.NoError(f, err)
	s := string(valid)
	for _, seed := range []string{
		s,
		string(python),
		string(dlq),
		string(rawDLQ),
		"",
		"garbage",
		"null",
		"[]",
		`{"data":{},"metadata":{}}`,
		strings.Replace(s, `"tier":"gold"`, `"tier":"silver"`, 1),                                             // bad checksum
		strings.Replace(s, `"credit":1500.0`, `"credit":1e999`, 1),                                            // float overflow
		strings.Replace(s, `"credit":1500.0`, `"credit":`+strings.Repeat("9", 400), 1),                        // huge integer
		strings.Replace(s, `"tier":"gold"`, `"tier":`+strings.Repeat("[", 1200)+strings.Repeat("]", 1200), 1), // deep nesting
		strings.Replace(s, `"tier":"gold"`, `"tier":"\ud800"`, 1),                                             // lone surrogate
		strings.Replace(s, `"Zoë"`, "\"Zo\xff\"", 1),                                                          // invalid UTF-8
		strings.Replace(s, `"version":2`, `"version":"v2"`, 1),
		strings.Replace(s, `"kind":"EVENT"`, `"kind":"COMMAND"`, 1),
	} {
		f.Add([]byte(seed))
	}
}

// FuzzDecode: Decode never panics, fails only with *DecodeError, and what it
// accepts survives Encode and a second Decode unchanged (apart from the spec
// version and checksum Encode fills in).
func FuzzDecode(f *testing.F) {
	decodeSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(raw)
		fromString, errString := DecodeString(string(raw))
		require.Equal(t, err, errString, "DecodeString and Decode disagree")
		require.Equal(t, e, fromString, "DecodeString and Decode disagree")
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		b, err := Encode(e)
		require.NoError(t, err)
		got, err := Decode(b)
		require.NoError(t, err)

		want := e
		if want.Metadata.Envelope.SpecVersion == "" {
			want.Metadata.Envelope.SpecVersion = SpecVersion
		}
		if want.Metadata.Envelope.Checksum == "" {
			want.Metadata.Envelope.Checksum = mustChecksum(t, e.Data)
		}
		require.Equal(t, want, got)
	})
}

// FuzzChecksum: Canonical output is valid JSON holding the same value as
// the input, and canonicalizing it again changes nothing.
func FuzzChecksum(f *testing.F) {
	for _, tc := range canonicalGolden {
		f.Add([]byte(tc.in))
	}
	for _, seed := range []string{"", "{", `{"a":NaN}`, `[1e400]`, "\"\xff\"", `"\ud800\udc00\udc00"`, `{"a":1,"a":{"b":[]}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Canonical(raw)
		if err != nil {
			return
		}
		require.True(t, json.Valid(c), "canonical form is not JSON: %q", c)
		require.Equal(t, normalize(t, raw), normalize(t, c), "canonical form changed the value")
		again, err := Canonical(c)
		require.NoError(t, err)
		require.Equal(t, string(c), string(again), "Canonical is not idempotent")
		for _, b := range c {
			require.Less(t, b, byte(0x80), "canonical form is not ASCII")
		}
	})
}

// normalize decodes raw with encoding/json (an independent decoder) and
// makes numbers comparable the way Python sees them: ints as exact big
// integers, anything with a fraction or exponent as a float64.
func normalize(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return normalizeValue(t, v)
}

func normalizeValue(t *testing.T, v any) any {
	switch v := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			f, err := v.Float64()
			require.NoError(t, err)
			return f
		}
		n, ok := new(big.Int).SetString(string(v), 10)
		require.True(t, ok, "integer %s", v)
		return n.String()
	case []any:
		for i := range v {
			v[i] = normalizeValue(t, v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = normalizeValue(t, v[k])
		}
		return v
	default:
		return v
	}
}

var benchPayload = json.RawMessage(`{"customer_id":"c0a8012e-7d4b-4f1a-9e5d-3b2f1a0c9d8e","email":"zoe.martin@example.com",` +
	`"name":"Zoë Martin","tier":"gold","credit_limit":1500.0,"orders":42,"tags":["vip","newsletter","eu"],` +
	`"address":{"street":"12 Rue de la Paix","city":"Paris","postcode":"75002","country":"FR"},"active":true}`)

func benchEnvelope() Envelope {
	e := sampleEnvelope()
	e.Data = benchPayload
	return e
}

func BenchmarkEncode(b *testing.B) {
	e := benchEnvelope()
	b.SetBytes(int64(len(e.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

// workloadAPayload is the payload of issue 14's workload A: 256 bytes as a
// JSON byte field (base64), as encoding/json writes a []byte.
func workloadAPayload() json.RawMessage {
	pad := make([]byte, 256)
	for i := range pad {
		pad[i] = byte(i * 7)
	}
	raw, err := json.Marshal(struct {
		Payload []byte `json:"payload"`
	}{pad})
	if err != nil {
		panic(err)
	}
	return raw
}

// BenchmarkDecode decodes an entry: "customer" is a payload with a float
// and non-ASCII text as a Go producer writes it (not canonical as written:
// its canonical form is computed), "customer-stored" the same payload as
// Laneway stores it (canonical: hashed as written), "bytes256" workload A's
// entry (about 840 bytes).
func BenchmarkDecode(b *testing.B) {
	stored, err := Canonical(benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data json.RawMessage
	}{{"customer", benchPayload}, {"customer-stored", stored}, {"bytes256", workloadAPayload()}} {
		e := sampleEnvelope()
		e.Data = c.data
		raw, err := Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The consumer's call: the entry as the broker returns it.
		entry := string(raw)
		b.Run(c.name+"/string", func(b *testing.B) {
			b.SetBytes(int64(len(entry)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeString(entry); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	b.SetBytes(int64(len(benchPayload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Checksum(benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeFastMatchesSlow: whatever the fast path of Decode accepts, the
// general decoder accepts too, with the same result.
func FuzzDecodeFastMatchesSlow(f *testing.F) {
	decodeSeeds(f)
	for _, seed := range []string{
		`{"data":{"a":1,"b":[true,false,null,"x",{}],"c":{"d":-5}},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT","priority":-50,"version":1}}}`,
		`{"data":{"b":1,"a":2},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{"a":-0},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{ },"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{"a":[ ]},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","id":"2"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT","priority":1.5}}}`,
		`{"data":{"a":"\u00e9"},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{"a":1e999},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"envelope":{"checksum":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"envelope":{"checksum":"00"}}} `,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":{"trace_id":"a","parent_id":"b","sampled":true}},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":{"sampled":false,"sampled":true}},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":{"trace_id":null}},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":{}},"domain":{"kind":"EVENT"}}}`,
		`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":{},"traceparent":{}},"domain":{"kind":"EVENT"}}}`,
	} {
		f.Add([]byte(seed))
	}
	for _, seed := range proteanShapes {
		f.Add([]byte(seed))
	}
	for _, data := range nonCanonicalPayloads {
		e := sampleEnvelope()
		e.Data = json.RawMessage(data)
		raw, err := Encode(e)
		require.NoError(f, err)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := decodeFast(raw)
		if !ok {
			return
		}
		slow, err := decodeSlow(raw)
		require.NoError(t, err, "fast path accepted what the general decoder refuses")
		require.Equal(t, slow, fast)
	})
}

// TestDecodeStringSharesEntry: DecodeString's metadata strings are
// substrings of the entry (no copies), and its payload is a copy the
// handler may change without touching the entry.
func TestDecodeStringSharesEntry(t *testing.T) {
	e := sampleEnvelope()
	e.Data = workloadAPayload()
	raw, err := Encode(e)
	require.NoError(t, err)
	entry := string(raw)
	got, err := DecodeString(entry)
	require.NoError(t, err)
	want, err := Decode(raw)
	require.NoError(t, err)
	require.Equal(t, want, got)

	lo := uintptr(unsafe.Pointer(unsafe.StringData(entry)))
	inside := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(entry))
	}
	for _, s := range []string{got.Metadata.Headers.ID, got.Metadata.Headers.Type, got.Metadata.Envelope.Checksum, got.Metadata.Domain.CorrelationID} {
		require.NotEmpty(t, s)
		require.True(t, inside(s), "%q was copied", s)
	}
	got.Data[0] = 'X'
	require.Equal(t, string(raw), entry, "the payload shares the entry's bytes")
}

// TestDecodeStringAllocs bounds the allocations of decoding workload A's
// entry: the payload copy, nothing per metadata member.
func TestDecodeStringAllocs(t *testing.T) {
	e := sampleEnvelope()
	e.Data = workloadAPayload()
	raw, err := Encode(e)
	require.NoError(t, err)
	entry := string(raw)
	n := testing.AllocsPerRun(100, func() {
		if _, err := DecodeString(entry); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, n, 2.0)
}

// TestDecodeFastPathTaken: the entries the engine writes take the fast
// path, whether their payload is canonical as written or not (then only its
// checksum needs the canonical form), with the general decoder's result.
func TestDecodeFastPathTaken(t *testing.T) {
	payloads := append([]string{`{"customer_id":"c-1","email":"a@example.com","tier":"gold"}`}, nonCanonicalPayloads...)
	for _, data := range payloads {
		e := sampleEnvelope()
		e.Data = json.RawMessage(data)
		raw, err := Encode(e)
		require.NoError(t, err)
		requireFastPath(t, raw)
	}
}

// requireFastPath asserts that raw takes the fast path, from bytes and from
// a string, with the general decoder's result.
func requireFastPath(t *testing.T, raw []byte) {
	t.Helper()
	fast, ok := decodeFast(raw)
	require.True(t, ok, "the general decoder ran for %s", raw)
	slow, err := decodeSlow(raw)
	require.NoError(t, err)
	require.Equal(t, slow, fast)
	fromString, err := DecodeString(string(raw))
	require.NoError(t, err)
	require.Equal(t, slow, fromString)
}

// nonCanonicalPayloads are payloads a Go producer writes that are not in
// the checksum's canonical form as written: a float and non-ASCII text,
// keys out of order, whitespace, escapes, a duplicate key. Encode writes
// them as they are.
var nonCanonicalPayloads = []string{
	string(benchPayload),
	`{ "b": "line\nbreak \"quoted\"", "a": [1.5, -0.0, 2e3] }`,
	`{"z":{"y":1,"x":"\u00e9t\u00e9"},"a":"caf\u00e9"}`,
	`{"a":1,"a":2}`,
}

// proteanShapes are metadata as the reference writes it: nulls for absent
// values, members the general decoder does not read, event store
// positions and extensions, and their near misses.
var proteanShapes = []string{
	`{"data": {"a": 1}, "metadata": {"headers": {"id": "1", "time": null, "type": "A.B.v1", "stream": null, "traceparent": null, "idempotency_key": null, "deadline": null}, "envelope": {"specversion": "1.0", "checksum": null}, "domain": {"fqn": "a.B", "kind": "EVENT", "origin_stream": null, "stream_category": "a::b", "version": 1, "sequence_id": "1.1", "asynchronous": true, "expected_version": null, "priority": null, "correlation_id": null, "causation_id": null}, "event_store": {"global_position": 7, "position": 2}, "extensions": {}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","traceparent":null,"traceparent":{"trace_id":"a"}},"domain":{"kind":"EVENT"}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","id":null},"domain":{"kind":"EVENT"}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1","deadline":[1,{"x":null}],"deadline":2},"domain":{"kind":"EVENT","fqn":{"a":"\u00e9"}}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT","version":null,"priority":-5}},"extensions":{"laneway_replay_group":"g"}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"extensions":{"laneway_replay_group":"g","other":1}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"extensions":{"other":[1,2],"more":null}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"extensions":"not an object"}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"extensions":null,"extensions":{}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT"},"event_store":null,"event_store":{}}}`,
	`{"data":{},"metadata":{"headers":{"id":"1","type":"A.B.v1"},"domain":{"kind":"EVENT","priority":nul}}}`,
}

// TestDecodeFastTakesProteanEntries: an entry a Protean service wrote (its
// own member names, nulls, event store positions, extensions) takes the
// fast path, with the general decoder's result.
func TestDecodeFastTakesProteanEntries(t *testing.T) {
	python, err := os.ReadFile("testdata/python_envelope.json")
	require.NoError(t, err)
	for _, raw := range []string{string(python), proteanShapes[0], proteanShapes[6]} {
		requireFastPath(t, []byte(raw))
	}
}

// FuzzCanonicalAsWritten: whatever the fast path's scanner takes for
// canonical as written is byte for byte its own canonical form, so hashing
// it as written gives the checksum the general decoder computes.
func FuzzCanonicalAsWritten(f *testing.F) {
	for _, tc := range canonicalGolden {
		f.Add([]byte(tc.in))
		f.Add([]byte(tc.want))
	}
	for _, seed := range []string{
		`{"s":"caf\u00e9 \"quoted\" \\ \n\r\t\b\f \u0000 \u001f \u007f \uffff"}`,
		`{"s":"\u0041"}`, `{"s":"\u000a"}`, `{"s":"\u00E9"}`, `{"s":"\/"}`, `{"s":"\ud83d\ude00"}`,
		`{"a\u00e9":1,"b":2}`, `{"\"":1,"a":2}`, "{\"s\":\"\x7f\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := &scanner{b: raw}
		canon, ok := s.skipValue(1)
		if !ok || !canon || s.sawWS || s.pos != len(raw) {
			return
		}
		got, err := Canonical(raw)
		require.NoError(t, err, "%s", raw)
		require.Equal(t, string(raw), string(got), "taken for canonical as written")
	})
}
