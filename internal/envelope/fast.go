package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// already in canonical form, as Laneway stores it, and otherwise (keys out
// of order, whitespace, raw non-ASCII text, escapes or floats spelled
// otherwise) its canonical form, for about a quarter of the general
// decoder's cost. Whenever the entry strays from that shape it gives up
// and Decode runs the general decoder, so both paths accept and return
// exactly the same (FuzzDecodeFastMatchesSlow holds them to it, and
// FuzzCanonicalAsWritten holds what is hashed as written to the canonical
// form). Members the fast path does not know send the entry to the general
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
// whitespace, object keys of printable ASCII without escapes in increasing
// order, strings and numbers as skipString and skipNumber take them), in
// which case its bytes are their own canonical form.
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
		if !c || bytes.IndexByte(key, '\\') >= 0 || (prev != nil && bytes.Compare(prev, key) >= 0) {
			// Escapes (the canonical form orders keys by the characters
			// they stand for), unsorted, or a duplicate the general
			// decoder resolves.
			canon = false
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

// skipString consumes a string. It is canonical as written when it is
// printable ASCII with the reference's escapes: \" \\ \b \f \n \r \t, and
// \u with four lowercase hex digits for the other control characters, DEL
// and non-ASCII characters outside the surrogates (which the canonical
// form pairs up, so they are left to it). Laneway stores payloads in that
// form, so their text with accents or quotes hashes as written. Raw
// non-ASCII bytes and other escapes are valid but not canonical.
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
			if i+1 >= len(s.b) {
				return false, false
			}
			switch s.b[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case '/':
				canon = false // the reference writes it bare
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
				canon = canon && canonicalEscape(s.b[i+2:i+6])
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

// canonicalEscape reports whether \u followed by the four hex digits h is
// how the canonical form writes that character.
func canonicalEscape(h []byte) bool {
	v := 0
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		default:
			return false // upper case: the canonical form writes lower case
		}
	}
	switch {
	case v < 0x20:
		return v != '\b' && v != '\t' && v != '\n' && v != '\f' && v != '\r' // those have short forms
	case v < 0x7f:
		return false // printable ASCII is written bare
	default:
		return v < 0xd800 || v > 0xdfff
	}
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

// skipNumber consumes a number. Integers other than -0 are canonical as
// written, and floats printed as the reference's float repr prints them.
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
	isFloat := false
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if digits() == 0 {
			return false, false
		}
		isFloat = true
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false, false
		}
		isFloat = true
	}
	s.pos = i
	if isFloat {
		// Canonical when it is already the way Python's repr prints it,
		// as Laneway stores it.
		text := string(s.b[start:i])
		f, err := strconv.ParseFloat(text, 64)
		return err == nil && pythonFloatRepr(f) == text, true
	}
	// -0 is not canonical: the reference reads it as 0.
	return s.b[start] != '-' || n != 1 || s.b[intStart] != '0', true
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
	var dataStart, dataEnd int
	var dataCanon, haveData, haveMeta bool
	md := &e.Metadata
	top := s.eachMember(func(key []byte) bool {
		switch string(key) {
		case "data":
			if haveData {
				return false
			}
			haveData = true
			s.ws()
			if s.pos >= len(s.b) || s.b[s.pos] != '{' {
				return false
			}
			dataStart = s.pos
			s.sawWS = false
			c, ok := s.skipValue(1)
			dataEnd, dataCanon = s.pos, c && !s.sawWS
			return ok
		case "metadata":
			if haveMeta || !s.metadata(md) {
				return false
			}
			haveMeta = true
			return true
		default:
			// _dlq_metadata, or a member the general decoder may read:
			// only the two members the engine writes take the fast path.
			return false
		}
	})
	if !top {
		return e, false
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
// A payload a Go producer wrote (keys in field order, raw non-ASCII text,
// floats as Go prints them) is not canonical as written but still takes
// the fast path: only its checksum needs the canonical form. The general
// decoder costs about four times as much, most of it in its maps of the
// envelope (docs/benchmarks-production-lane.md).
func compactData(data []byte) ([]byte, bool) {
	var buf bytes.Buffer
	buf.Grow(len(data))
	if json.Compact(&buf, data) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
