package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/laneway/laneway/internal/plainbytes"
)

// The fast path of Decode.
//
// Decode runs once per consumed message, so its cost bounds the consume
// rate. The general decoder (decodeSlow) unmarshals every level of the
// envelope into maps to check member names exactly, and builds a tree of the
// payload to compute the canonical checksum: 60-75 µs and about 200
// allocations for a typical entry. decodeFast reads the entry in one pass
// over the bytes instead, for the shapes the engine and the reference write
// (no escapes in member names or metadata strings, no duplicate members, no
// _dlq_metadata; the reference's nulls, and its members the general decoder
// does not read, skipped). It hashes the payload as it is when it is
// already in canonical form, and otherwise (floats, escapes, non-ASCII
// text, keys out of order, whitespace) its canonical form, for about a
// quarter of the general decoder's cost. Whenever the entry strays from
// that shape it gives up and Decode runs the general decoder, so both paths
// accept and return exactly the same (FuzzDecodeFastMatchesSlow holds them
// to it). Members the fast path does not know send the entry to the general
// decoder too (at the top level and in metadata); the reference's members
// it skips are named one by one (protean), so a member the general decoder
// learns to read later can never be skipped here unnoticed: the fuzz
// test's seeds of the reference's entries then fail.

// scanner walks JSON bytes. Every method either consumes one well-formed
// piece or reports false; false means "not for the fast path", never
// "malformed": the general decoder decides that.
type scanner struct {
	b     []byte
	pos   int
	sawWS bool // whitespace was skipped (the value is not canonical as written)
	// src is b as a string when b is a view of one (DecodeString): member
	// values are then substrings of it rather than copies.
	src string
}

// text returns v, a sub-slice of s.b, as a string: a substring of src
// (no copy; the entry string is immutable and held while its message is)
// or a copy.
func (s *scanner) text(v []byte) string {
	if s.src == "" || len(v) == 0 {
		return string(v)
	}
	start := cap(s.b) - cap(v) // v is s.b[start:...]
	return s.src[start : start+len(v)]
}

func (s *scanner) ws() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
			s.sawWS = true
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.pos < len(s.b) && s.b[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// plainString reads a string without escapes and returns its contents
// (a sub-slice of the input).
func (s *scanner) plainString() ([]byte, bool) {
	s.ws()
	if s.pos >= len(s.b) || s.b[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.pos = i + 1
			return s.b[start:i], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// skipValue consumes any JSON value, validating it. canon reports whether
// the value is in the reference's canonical form as written (no
// whitespace, object keys in increasing order, strings of printable ASCII
// without escapes, integers other than -0, no floats), in which case its
// bytes are their own canonical form.
func (s *scanner) skipValue(depth int) (canon, ok bool) {
	if depth > maxDepth {
		return false, false
	}
	s.ws()
	if s.pos >= len(s.b) {
		return false, false
	}
	switch c := s.b[s.pos]; {
	case c == '{':
		return s.skipObject(depth)
	case c == '[':
		s.pos++
		canon = true
		if s.consume(']') {
			return true, true
		}
		for {
			c, ok := s.skipValue(depth + 1)
			if !ok {
				return false, false
			}
			canon = canon && c
			if s.consume(',') {
				continue
			}
			if s.consume(']') {
				return canon, true
			}
			return false, false
		}
	case c == '"':
		return s.skipString()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return true, s.literal("false")
	case c == 'n':
		return true, s.literal("null")
	default:
		return s.skipNumber()
	}
}

func (s *scanner) skipObject(depth int) (canon, ok bool) {
	s.pos++ // '{'
	canon = true
	if s.consume('}') {
		return true, true
	}
	var prev []byte
	for {
		s.ws()
		if s.pos >= len(s.b) || s.b[s.pos] != '"' {
			return false, false
		}
		keyStart := s.pos
		c, ok := s.skipString()
		if !ok {
			return false, false
		}
		key := s.b[keyStart+1 : s.pos-1]
		if !c || (prev != nil && bytes.Compare(prev, key) >= 0) {
			canon = false // escapes, unsorted, or a duplicate the general decoder resolves
		}
		prev = key
		if !s.consume(':') {
			return false, false
		}
		c, ok = s.skipValue(depth + 1)
		if !ok {
			return false, false
		}
		canon = canon && c
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return canon, true
		}
		return false, false
	}
}

// skipString consumes a string; escapes and non-ASCII are valid but not
// canonical as written (the reference escapes differently from Go).
func (s *scanner) skipString() (canon, ok bool) {
	canon = true
	i := plainbytes.Skip(s.b, s.pos+1)
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return canon, true
		case c < 0x20:
			return false, false
		case c == '\\':
			canon = false
			if i+1 >= len(s.b) {
				return false, false
			}
			switch s.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s.b) {
					return false, false
				}
				for _, h := range s.b[i+2 : i+6] {
					if !isHex(h) {
						return false, false
					}
				}
				i += 6
			default:
				return false, false
			}
			i = plainbytes.Skip(s.b, i)
		default:
			if c > 0x7e {
				canon = false
			}
			i++
		}
	}
	return false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// null consumes a null, if one is next.
func (s *scanner) null() bool {
	s.ws()
	return s.literal("null")
}

func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.b[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}

// skipNumber consumes a number; only integers other than -0 are canonical
// as written (the reference re-prints floats).
func (s *scanner) skipNumber() (canon, ok bool) {
	start := s.pos
	i := s.pos
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	n := digits()
	if n == 0 || (n > 1 && s.b[intStart] == '0') {
		return false, false
	}
	canon = true
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if digits() == 0 {
			return false, false
		}
		canon = false
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false, false
		}
		canon = false
	}
	if canon && s.b[start] == '-' && n == 1 && s.b[intStart] == '0' {
		canon = false // -0: the reference reads it as 0
	}
	s.pos = i
	return canon, true
}

// fields is one metadata object's string members the fast path fills.
type fields []struct {
	key string
	dst *string
}

// members reads an object whose members named in strs are strings without
// escapes, null or absent; when prio and ver are set, "priority" and
// "version" are integer members (or null); when tp is set, "traceparent" is
// a trace context object or null. Members named in ignored, which the
// general decoder does not read, are skipped whatever their value. Other
// members, duplicates and anything else give up.
func (s *scanner) members(strs fields, ignored []string, prio, ver *int, tp **TraceParent) bool {
	if !s.consume('{') {
		return false
	}
	seen := 0 // bit per known member
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') {
			return false
		}
		bit := -1
		for i, f := range strs {
			if string(key) == f.key {
				bit = i
				if s.null() {
					*f.dst = "" // as the general decoder reads null
					break
				}
				v, ok := s.plainString()
				if !ok {
					return false
				}
				*f.dst = s.text(v)
				break
			}
		}
		if bit < 0 && tp != nil && string(key) == "traceparent" {
			bit = len(strs) + 2
			if seen&(1<<bit) != 0 {
				return false
			}
			if s.null() {
				*tp = nil // the reference writes null when it has no trace
			} else if *tp = new(TraceParent); !s.traceParent(*tp) {
				return false
			}
		}
		if bit < 0 && slices.Contains(ignored, string(key)) {
			if _, ok := s.skipValue(2); !ok {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
		if bit < 0 {
			dst := (*int)(nil)
			switch {
			case prio != nil && string(key) == "priority":
				dst, bit = prio, len(strs)
			case ver != nil && string(key) == "version":
				dst, bit = ver, len(strs)+1
			}
			if dst != nil && s.null() {
				*dst = 0 // as the general decoder reads null
			} else if dst != nil {
				s.ws()
				start := s.pos
				canon, ok := s.skipNumber()
				if !ok || !canon {
					return false
				}
				n, err := strconv.ParseInt(string(s.b[start:s.pos]), 10, 0)
				if err != nil {
					return false
				}
				*dst = int(n)
			} else {
				return false // a member the engine does not write: the general decoder
			}
		}
		if seen&(1<<bit) != 0 {
			return false
		}
		seen |= 1 << bit
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// traceParent reads a headers.traceparent object of the shape the engine
// writes: trace_id and parent_id strings without escapes and a boolean
// sampled, each at most once. Anything else (null included) gives up, and
// the general decoder decides.
func (s *scanner) traceParent(tp *TraceParent) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	var seen [3]bool
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') {
			return false
		}
		s.ws()
		switch string(key) {
		case "trace_id", "parent_id":
			i, dst := 0, &tp.TraceID
			if string(key) == "parent_id" {
				i, dst = 1, &tp.ParentID
			}
			v, ok := s.plainString()
			if seen[i] || !ok {
				return false
			}
			seen[i], *dst = true, s.text(v)
		case "sampled":
			switch {
			case seen[2]:
				return false
			case s.literal("true"):
				tp.Sampled = true
			case s.literal("false"):
				tp.Sampled = false
			default:
				return false
			}
			seen[2] = true
		default:
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// decodeFast is Decode for the common shape; ok false means "use the
// general decoder".
func decodeFast(raw []byte) (e Envelope, ok bool) {
	return decodeFastFrom(raw, "")
}

// decodeFastFrom is decodeFast; src, when not empty, is raw as a string
// (raw is a read-only view of it), and the metadata strings returned are
// substrings of it.
func decodeFastFrom(raw []byte, src string) (e Envelope, ok bool) {
	if !utf8.Valid(raw) {
		return e, false
	}
	s := &scanner{b: raw, src: src}
	if !s.consume('{') {
		return e, false
	}
	var dataStart, dataEnd int
	var dataCanon, haveData, haveMeta bool
	md := &e.Metadata
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') {
			return e, false
		}
		switch string(key) {
		case "data":
			if haveData {
				return e, false
			}
			haveData = true
			s.ws()
			if s.pos >= len(s.b) || s.b[s.pos] != '{' {
				return e, false
			}
			dataStart = s.pos
			s.sawWS = false
			c, ok := s.skipValue(1)
			if !ok {
				return e, false
			}
			dataEnd, dataCanon = s.pos, c && !s.sawWS
		case "metadata":
			if haveMeta || !s.metadata(md) {
				return e, false
			}
			haveMeta = true
		default:
			// _dlq_metadata, or a member the general decoder may read:
			// only the two members the engine writes take the fast path.
			return e, false
		}
		if s.consume(',') {
			continue
		}
		if !s.consume('}') {
			return e, false
		}
		break
	}
	s.ws()
	if s.pos != len(s.b) || !haveData || !haveMeta {
		return e, false
	}
	// hashed is the payload's canonical form: the bytes as written when
	// they are already in it, else the general decoder's compacted payload
	// re-serialized (which may fail, on a float that overflows, even when
	// no checksum is given; the general decoder words that error).
	var hashed []byte
	if dataCanon {
		e.Data = bytes.Clone(raw[dataStart:dataEnd])
		hashed = e.Data
	} else {
		if e.Data, ok = compactData(raw[dataStart:dataEnd]); !ok {
			return e, false
		}
		var err error
		if hashed, err = Canonical(e.Data); err != nil {
			return e, false
		}
	}
	if validate(&e) != nil {
		return e, false
	}
	if c := md.Envelope.Checksum; c != "" {
		sum := sha256.Sum256(hashed)
		var hexSum [2 * sha256.Size]byte
		hex.Encode(hexSum[:], sum[:])
		if string(hexSum[:]) != c {
			return e, false // mismatch: the general decoder words the error
		}
	}
	return e, true
}

// compactData returns a copy of a payload the scanner has read whole,
// without its insignificant whitespace, as the general decoder returns it.
// A payload with floats, escapes, non-ASCII text or keys out of order is
// not canonical as written but still takes the fast path: only its
// checksum needs the canonical form. The general decoder costs about four
// times as much, most of it in its maps of the envelope (docs/BENCHMARKS.md).
func compactData(data []byte) ([]byte, bool) {
	var buf bytes.Buffer
	buf.Grow(len(data))
	if json.Compact(&buf, data) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

func (s *scanner) metadata(md *Metadata) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	var seen [len(metadataMembers)]bool
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') || !s.metadataMember(string(key), md, &seen) {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// metadataMembers are the members of metadata the fast path reads.
var metadataMembers = [...]string{"headers", "envelope", "domain", "event_store", "extensions"}

// metadataMember reads the value of metadata's member key; seen marks the
// members of metadataMembers already read.
func (s *scanner) metadataMember(key string, md *Metadata, seen *[len(metadataMembers)]bool) bool {
	i := slices.Index(metadataMembers[:], key)
	if i < 0 || seen[i] {
		return false // another member, or a duplicate: the general decoder
	}
	seen[i] = true
	switch key {
	case "event_store":
		// The reference's event store positions, which the general
		// decoder does not read.
		_, ok := s.skipValue(2)
		return ok
	case "extensions":
		return s.extensions()
	}
	s.ws()
	if s.pos < len(s.b) && s.b[s.pos] != '{' {
		return false // null or a wrong type: the general decoder
	}
	switch key {
	case "headers":
		h := &md.Headers
		return s.members(fields{{"id", &h.ID}, {"time", &h.Time}, {"type", &h.Type}, {"stream", &h.Stream}}, protean.headers, nil, nil, &h.TraceParent)
	case "envelope":
		in := &md.Envelope
		return s.members(fields{{"specversion", &in.SpecVersion}, {"checksum", &in.Checksum}}, nil, nil, nil, nil)
	default: // domain
		d := &md.Domain
		return s.members(fields{
			{"kind", &d.Class}, {"stream_category", &d.StreamCategory}, {"sequence_id", &d.SequenceID},
			{"correlation_id", &d.CorrelationID}, {"causation_id", &d.CausationID},
		}, protean.domain, &d.Priority, &d.Version, nil)
	}
}

// protean names the metadata members the reference writes and the general
// decoder does not read (docs/protean.md): the fast path skips them, so an
// entry a Protean service wrote takes it too.
var protean = struct{ headers, domain []string }{
	headers: []string{"idempotency_key", "deadline"},
	domain:  []string{"fqn", "origin_stream", "asynchronous", "expected_version"},
}

// extensions reads metadata.extensions when it holds none of the members
// the general decoder reads from it (null, {} or a producer's own members,
// which are skipped); with one of those it gives up.
func (s *scanner) extensions() bool {
	if s.null() {
		return true
	}
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') {
			return false
		}
		if k := string(key); k == ReplayGroupExtension || k == TraceStateExtension {
			return false
		}
		if _, ok := s.skipValue(2); !ok {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}
