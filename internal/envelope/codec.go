package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// SpecVersion is the envelope spec version written by Encode.
const SpecVersion = "1.0"

// ErrMalformed matches (errors.Is) every error Decode returns for an entry
// that is not a valid envelope. Such an entry can never succeed, so the
// consumer moves it to the DLQ at once instead of retrying it.
var ErrMalformed = errors.New("malformed envelope")

// DecodeError is the error Decode returns; Reason says what is wrong, in a
// form fit for a DLQ failure_reason.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return "malformed envelope: " + e.Reason }

// Is makes errors.Is(err, ErrMalformed) true for every *DecodeError.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, args ...any) error {
	return &DecodeError{Reason: fmt.Sprintf(format, args...)}
}

// Encode marshals e as the value of a stream entry's data field. It fills
// Metadata.Envelope.SpecVersion ("1.0") and Metadata.Envelope.Checksum when
// they are empty, and refuses to write what Decode would refuse to read: a
// payload that is not a JSON object, a missing id or type, an unknown kind,
// or a checksum that does not match the payload.
func Encode(e Envelope) ([]byte, error) {
	if err := validate(&e); err != nil {
		return nil, fmt.Errorf("envelope: encode: %w", err)
	}
	sum, err := Checksum(e.Data)
	if err != nil {
		return nil, fmt.Errorf("envelope: encode: %w", err)
	}
	if e.Metadata.Envelope.SpecVersion == "" {
		e.Metadata.Envelope.SpecVersion = SpecVersion
	}
	switch e.Metadata.Envelope.Checksum {
	case "":
		e.Metadata.Envelope.Checksum = sum
	case sum:
	default:
		return nil, fmt.Errorf("envelope: encode: checksum %s does not match the payload (%s)", e.Metadata.Envelope.Checksum, sum)
	}
	return marshal(e)
}

// marshal encodes v without Go's HTML escaping of <, > and &, so entries
// read naturally in redis-cli (the reference does not escape them either).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("envelope: marshal: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// validate holds the structural rules shared by Encode and Decode.
func validate(e *Envelope) error {
	if !isObject(e.Data) {
		if len(bytes.TrimSpace(e.Data)) == 0 || string(bytes.TrimSpace(e.Data)) == "null" {
			return malformed("missing data")
		}
		return malformed("data is not a JSON object")
	}
	h := e.Metadata.Headers
	if h.ID == "" {
		return malformed("missing metadata.headers.id")
	}
	if h.Type == "" {
		return malformed("missing metadata.headers.type")
	}
	if k := e.Metadata.Domain.Class; k != ClassEvent && k != ClassCommand {
		return malformed("unknown kind %q in message %s (want %s or %s)", k, h.ID, ClassEvent, ClassCommand)
	}
	return nil
}

// isObject reports whether raw's first byte after JSON whitespace opens an
// object. (A loop: bytes.TrimLeft builds its cutset's table on every call,
// and this runs once per message.)
func isObject(raw []byte) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

// Decode reads the value of a stream entry's data field. It is strict about
// structure, because the reference is: the entry must be a JSON object (valid
// UTF-8) with a "data" object and a "metadata" object carrying
// headers.id, headers.type and a known domain.kind; when
// metadata.envelope.checksum is present it must equal Checksum(data). A
// missing or empty checksum is accepted, as the reference accepts it.
// Members Decode does not know are ignored; members it knows must have the
// right JSON type (domain.version may also be a "v<N>" string, the form
// older reference releases wrote). A "_dlq_metadata" object, when present,
// is decoded into DLQ.
//
// Every failure is a *DecodeError (errors.Is(err, ErrMalformed)). Decode
// never panics. Data is returned compacted, so Decode(Encode(Decode(x)))
// gives back the same Data bytes.
func Decode(raw []byte) (Envelope, error) {
	if e, ok := decodeFast(raw); ok {
		return e, nil
	}
	return decodeSlow(raw)
}

// DecodeString is Decode of an entry held as a string (as the broker
// returns it), without copying it to bytes first: the metadata strings of
// the result are substrings of raw, so the entry is decoded with a few
// allocations instead of one per member (the consume path runs this once
// per message).
func DecodeString(raw string) (Envelope, error) {
	if raw == "" {
		return decodeSlow(nil)
	}
	// The fast path only reads the view; it never writes or keeps it.
	view := unsafe.Slice(unsafe.StringData(raw), len(raw))
	if e, ok := decodeFastFrom(view, raw); ok {
		return e, nil
	}
	return decodeSlow([]byte(raw))
}

// decodeSlow is the general decoder behind Decode (see decodeFast).
func decodeSlow(raw []byte) (Envelope, error) {
	top, err := decodeTop(raw)
	if err != nil {
		return Envelope{}, err
	}
	var e Envelope
	data, ok := top.m["data"]
	if !ok || isNull(data) {
		return Envelope{}, malformed("missing data")
	}
	if !isObject(data) {
		return Envelope{}, malformed("data is not a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return Envelope{}, malformed("data: %v", err)
	}
	e.Data = compact.Bytes()

	meta, ok, err := top.object("metadata")
	if err != nil {
		return Envelope{}, err
	}
	if !ok {
		return Envelope{}, malformed("missing metadata")
	}
	if err := decodeMetadata(meta, &e.Metadata); err != nil {
		return Envelope{}, err
	}
	if err := validate(&e); err != nil {
		return Envelope{}, err
	}

	sum, err := Checksum(e.Data)
	if err != nil {
		return Envelope{}, malformed("data: %v", strings.TrimPrefix(err.Error(), "envelope: "))
	}
	if c := e.Metadata.Envelope.Checksum; c != "" && c != sum {
		return Envelope{}, malformed("checksum mismatch: envelope says %s, payload hashes to %s", c, sum)
	}

	dlq, ok, err := top.object("_dlq_metadata")
	if err != nil {
		return Envelope{}, err
	}
	if ok {
		e.DLQ = &DLQMetadata{}
		if err := decodeDLQ(dlq, e.DLQ); err != nil {
			return Envelope{}, err
		}
	}
	return e, nil
}

func decodeTop(raw []byte) (object, error) {
	if !utf8.Valid(raw) {
		return object{}, malformed("not valid UTF-8")
	}
	if !json.Valid(raw) {
		return object{}, malformed("not JSON")
	}
	if !isObject(raw) {
		return object{}, malformed("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return object{}, malformed("not a JSON object: %v", err)
	}
	return object{m: m}, nil
}

func decodeMetadata(meta object, md *Metadata) error {
	headers, _, err := meta.object("headers")
	if err != nil {
		return err
	}
	h := &md.Headers
	for _, f := range []struct {
		key string
		dst *string
	}{{"id", &h.ID}, {"time", &h.Time}, {"type", &h.Type}, {"stream", &h.Stream}} {
		if *f.dst, err = headers.str(f.key); err != nil {
			return err
		}
	}
	h.TraceParent = headers.traceParent()

	integrity, _, err := meta.object("envelope")
	if err != nil {
		return err
	}
	if md.Envelope.SpecVersion, err = integrity.str("specversion"); err != nil {
		return err
	}
	if md.Envelope.Checksum, err = integrity.str("checksum"); err != nil {
		return err
	}

	domain, _, err := meta.object("domain")
	if err != nil {
		return err
	}
	d := &md.Domain
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"kind", &d.Class}, {"stream_category", &d.StreamCategory}, {"sequence_id", &d.SequenceID},
		{"correlation_id", &d.CorrelationID}, {"causation_id", &d.CausationID},
	} {
		if *f.dst, err = domain.str(f.key); err != nil {
			return err
		}
	}
	priority, err := domain.integer("priority", false)
	if err != nil {
		return err
	}
	version, err := domain.integer("version", true)
	if err != nil {
		return err
	}
	d.Priority, d.Version = int(priority), int(version)

	// Extensions are the producer's business; only our own member is read,
	// and an extensions value of another shape is not a reason to reject
	// the message.
	if ext, ok, err := meta.object("extensions"); err == nil && ok {
		md.ReplayGroup, _ = ext.str(ReplayGroupExtension)
		if ts, _ := ext.str(TraceStateExtension); ts != "" {
			md.Extensions = &Extensions{TraceState: ts}
		}
	}
	return nil
}

func decodeDLQ(o object, m *DLQMetadata) error {
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"original_stream", &m.OriginalStream}, {"original_id", &m.OriginalID},
		{"consumer_group", &m.ConsumerGroup}, {"consumer", &m.Consumer},
		{"failed_at", &m.FailedAt}, {"failure_reason", &m.FailureReason},
	} {
		if *f.dst, err = o.str(f.key); err != nil {
			return err
		}
	}
	m.RetryCount, err = o.integer("retry_count", false)
	return err
}

// object reads members by their exact names. (encoding/json matches struct
// fields case-insensitively, which would let "ID" stand in for "id"; the
// reference would not.)
type object struct {
	path string
	m    map[string]json.RawMessage
}

func (o object) name(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// object returns the member key as an object; ok is false when it is absent
// or null (an empty object stands in, so lookups on it find nothing).
func (o object) object(key string) (_ object, ok bool, _ error) {
	sub := object{path: o.name(key)}
	raw, present := o.m[key]
	if !present || isNull(raw) {
		return sub, false, nil
	}
	if !isObject(raw) {
		return sub, false, malformed("%s is not a JSON object", sub.path)
	}
	if err := json.Unmarshal(raw, &sub.m); err != nil {
		return sub, false, malformed("%s: %v", sub.path, err)
	}
	return sub, true, nil
}

// traceParent returns headers.traceparent. A trace context is no reason to
// reject a message, so one of another shape (null, the W3C header string,
// members of the wrong type) reads as absent.
func (o object) traceParent() *TraceParent {
	tpo, ok, err := o.object("traceparent")
	if err != nil || !ok {
		return nil
	}
	var tp TraceParent
	var errID, errParent, errSampled error
	tp.TraceID, errID = tpo.str("trace_id")
	tp.ParentID, errParent = tpo.str("parent_id")
	if raw, ok := tpo.m["sampled"]; ok && !isNull(raw) {
		errSampled = json.Unmarshal(raw, &tp.Sampled)
	}
	if errID != nil || errParent != nil || errSampled != nil {
		return nil
	}
	return &tp
}

// str returns a string member; absent or null is "".
func (o object) str(key string) (string, error) {
	raw, present := o.m[key]
	if !present || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", malformed("%s is not a string", o.name(key))
	}
	return s, nil
}

// integer returns an integer member; absent or null is 0. With vForm, a
// "v<N>" or "<N>" string is accepted too.
func (o object) integer(key string, vForm bool) (int64, error) {
	raw, present := o.m[key]
	if !present || isNull(raw) {
		return 0, nil
	}
	text := string(bytes.TrimSpace(raw))
	if vForm && strings.HasPrefix(text, `"`) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, malformed("%s: %v", o.name(key), err)
		}
		text = strings.TrimPrefix(s, "v")
	}
	n, err := strconv.ParseInt(text, 10, 0)
	if err != nil {
		return 0, malformed("%s is not an integer: %s", o.name(key), truncate(string(raw), 64))
	}
	return n, nil
}

// ParseType splits a type string "<Domain>.<Name>.v<N>" into its parts. The
// domain may itself contain dots (the split is on the last two), the name
// may not; N is a decimal integer >= 1 without leading zeros, so that
// TypeString(ParseType(t)) == t.
func ParseType(t string) (domain, name string, version int, err error) {
	vi := strings.LastIndexByte(t, '.')
	if vi < 0 {
		return "", "", 0, fmt.Errorf("envelope: type %q is not <Domain>.<Name>.v<N>", t)
	}
	ni := strings.LastIndexByte(t[:vi], '.')
	if ni < 0 {
		return "", "", 0, fmt.Errorf("envelope: type %q is not <Domain>.<Name>.v<N>", t)
	}
	domain, name, v := t[:ni], t[ni+1:vi], t[vi+1:]
	if domain == "" || name == "" {
		return "", "", 0, fmt.Errorf("envelope: type %q has an empty domain or name", t)
	}
	digits, ok := strings.CutPrefix(v, "v")
	if !ok || digits == "" || digits[0] == '0' || !allDigits(digits) {
		return "", "", 0, fmt.Errorf("envelope: type %q: version %q is not v<N> with N >= 1", t, v)
	}
	version, err = strconv.Atoi(digits)
	if err != nil {
		return "", "", 0, fmt.Errorf("envelope: type %q: version %q is out of range", t, v)
	}
	return domain, name, version, nil
}

// allDigits reports whether s is only ASCII digits.
func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// TypeString builds "<Domain>.<Name>.v<N>".
func TypeString(domain, name string, version int) string {
	return domain + "." + name + ".v" + strconv.Itoa(version)
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
