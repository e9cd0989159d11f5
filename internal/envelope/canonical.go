package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds the nesting of a payload. The reference's decoder gives up
// near Python's recursion limit (1000), so a deeper payload could never be
// read on the other side; the bound also keeps hostile input from growing
// the stack without limit.
const maxDepth = 1000

// Checksum returns the SHA-256 (lowercase hex) of the canonical form of
// payload, the value the reference stores in metadata.envelope.checksum.
func Checksum(payload json.RawMessage) (string, error) {
	b, err := Canonical(payload)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// CanonicalChecksum returns the canonical form of payload and its
// checksum. Writers that store the canonical form let Decode verify the
// checksum by hashing the stored bytes directly (its fast path).
func CanonicalChecksum(payload json.RawMessage) (json.RawMessage, string, error) {
	b, err := Canonical(payload)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Canonical returns payload re-serialized byte for byte as the reference
// does it: Python's
//
//	json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
//
// That means keys sorted by code point (the last of duplicate keys wins),
// no insignificant whitespace, everything outside printable ASCII escaped as
// \uXXXX with lowercase hex (astral characters as surrogate pairs), lone
// surrogates kept as they were written, integers verbatim except -0 (which
// Python reads as 0), and floats printed the way Python's repr prints them.
//
// Input Python would read but no JSON producer should write is rejected:
// NaN and Infinity literals, floats that overflow float64 (Python turns them
// into inf and writes the non-JSON token Infinity), invalid UTF-8, and
// nesting deeper than 1000 levels.
func Canonical(payload json.RawMessage) ([]byte, error) {
	if !utf8.Valid(payload) {
		return nil, errors.New("envelope: payload is not valid UTF-8")
	}
	p := parser{buf: payload}
	v, err := p.parseValue(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.buf) {
		return nil, p.errorf("unexpected data after the JSON value")
	}
	return v.appendTo(make([]byte, 0, len(payload))), nil
}

type valueKind uint8

const (
	kindNull valueKind = iota
	kindTrue
	kindFalse
	kindString
	kindNumber
	kindArray
	kindObject
)

// value is a parsed JSON value. Strings are held as WTF-8 (UTF-8 that may
// also encode lone surrogates) so that "\ud800" survives the round trip the
// way it does in Python, and so that sorting keys bytewise sorts them by code
// point, which is what Python's sort of str does.
type value struct {
	kind  valueKind
	text  string   // string contents, or the number already in canonical form
	elems []value  // array elements, or object member values
	keys  []string // object member keys, parallel to elems
}

type parser struct {
	buf []byte
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("envelope: invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) parseValue(depth int) (value, error) {
	p.skipSpace()
	if p.pos >= len(p.buf) {
		return value{}, p.errorf("unexpected end of input")
	}
	switch c := p.buf[p.pos]; {
	case c == '{':
		return p.parseObject(depth + 1)
	case c == '[':
		return p.parseArray(depth + 1)
	case c == '"':
		s, err := p.parseString()
		return value{kind: kindString, text: s}, err
	case c == 't':
		return value{kind: kindTrue}, p.literal("true")
	case c == 'f':
		return value{kind: kindFalse}, p.literal("false")
	case c == 'n':
		return value{kind: kindNull}, p.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return p.parseNumber()
	default:
		return value{}, p.errorf("unexpected character %q", c)
	}
}

func (p *parser) literal(word string) error {
	if !strings.HasPrefix(string(p.buf[p.pos:min(len(p.buf), p.pos+len(word))]), word) {
		return p.errorf("expected %s", word)
	}
	p.pos += len(word)
	return nil
}

func (p *parser) parseObject(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, p.errorf("nesting deeper than %d levels", maxDepth)
	}
	p.pos++ // '{'
	v := value{kind: kindObject}
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
			return value{}, p.errorf("expected a string key")
		}
		key, err := p.parseString()
		if err != nil {
			return value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
			return value{}, p.errorf("expected ':' after an object key")
		}
		p.pos++
		member, err := p.parseValue(depth)
		if err != nil {
			return value{}, err
		}
		v.keys = append(v.keys, key)
		v.elems = append(v.elems, member)
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return value{}, p.errorf("unexpected end of input in an object")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return value{}, p.errorf("expected ',' or '}' in an object")
		}
	}
}

func (p *parser) parseArray(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, p.errorf("nesting deeper than %d levels", maxDepth)
	}
	p.pos++ // '['
	v := value{kind: kindArray}
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		elem, err := p.parseValue(depth)
		if err != nil {
			return value{}, err
		}
		v.elems = append(v.elems, elem)
		p.skipSpace()
		if p.pos >= len(p.buf) {
			return value{}, p.errorf("unexpected end of input in an array")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return value{}, p.errorf("expected ',' or ']' in an array")
		}
	}
}

// parseString reads a string starting at the opening quote and returns its
// contents as WTF-8. The input has already been checked to be valid UTF-8.
func (p *parser) parseString() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		if c == '"' {
			s := string(p.buf[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errorf("control character %#02x in a string", c)
		}
		p.pos++
	}
	out := append([]byte(nil), p.buf[start:p.pos]...)
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("control character %#02x in a string", c)
		case c != '\\':
			out = append(out, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.buf) {
			break
		}
		esc := p.buf[p.pos+1]
		p.pos += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(p.buf[p.pos:])
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			p.pos += 4
			// Like Python, join a high surrogate with an immediately following
			// escaped low surrogate; anything else leaves it lone.
			if 0xD800 <= r && r <= 0xDBFF && p.pos+1 < len(p.buf) && p.buf[p.pos] == '\\' && p.buf[p.pos+1] == 'u' {
				r2, ok := hex4(p.buf[p.pos+2:])
				if !ok {
					return "", p.errorf("invalid \\u escape")
				}
				if 0xDC00 <= r2 && r2 <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					p.pos += 6
				}
			}
			out = appendWTF8(out, r)
		default:
			p.pos--
			return "", p.errorf("invalid escape \\%c", esc)
		}
	}
	return "", p.errorf("unterminated string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendWTF8 is utf8.AppendRune except that surrogates are encoded as
// three-byte sequences instead of being replaced by U+FFFD.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// decodeWTF8 decodes one code point of a string built by the parser.
func decodeWTF8(s string) (rune, int) {
	c := s[0]
	switch {
	case c < 0x80:
		return rune(c), 1
	case c < 0xE0:
		return rune(c&0x1F)<<6 | rune(s[1]&0x3F), 2
	case c < 0xF0:
		return rune(c&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	default:
		return rune(c&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
}

// parseNumber reads a number and stores it in the form Python prints it
// after json.loads: an int verbatim (arbitrary size), a float (any number
// with a fraction or an exponent) through float repr.
func (p *parser) parseNumber() (value, error) {
	start := p.pos
	isFloat := false
	if p.buf[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.buf) && p.buf[p.pos] == '0':
		p.pos++
	case p.pos < len(p.buf) && '1' <= p.buf[p.pos] && p.buf[p.pos] <= '9':
		p.skipDigits()
	default:
		return value{}, p.errorf("invalid number")
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '.' {
		isFloat = true
		p.pos++
		if !p.skipDigits() {
			return value{}, p.errorf("invalid number: no digits after '.'")
		}
	}
	if p.pos < len(p.buf) && (p.buf[p.pos] == 'e' || p.buf[p.pos] == 'E') {
		isFloat = true
		p.pos++
		if p.pos < len(p.buf) && (p.buf[p.pos] == '+' || p.buf[p.pos] == '-') {
			p.pos++
		}
		if !p.skipDigits() {
			return value{}, p.errorf("invalid number: no digits in the exponent")
		}
	}
	text := string(p.buf[start:p.pos])
	if !isFloat {
		if text == "-0" {
			text = "0" // int("-0") is 0 in Python
		}
		return value{kind: kindNumber, text: text}, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return value{}, p.errorf("number %s does not fit a float64", text)
	}
	return value{kind: kindNumber, text: pythonFloatRepr(f)}, nil
}

func (p *parser) skipDigits() bool {
	start := p.pos
	for p.pos < len(p.buf) && '0' <= p.buf[p.pos] && p.buf[p.pos] <= '9' {
		p.pos++
	}
	return p.pos > start
}

// pythonFloatRepr formats a finite float as Python's repr does: the shortest
// digits that round-trip, in scientific notation when the decimal exponent is
// below -4 or at least 16 (two-digit minimum exponent, explicit sign), and
// otherwise positional with at least one fractional digit.
func pythonFloatRepr(f float64) string {
	s := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(s[strings.LastIndexByte(s, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return s
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

func (v *value) appendTo(b []byte) []byte {
	switch v.kind {
	case kindNull:
		return append(b, "null"...)
	case kindTrue:
		return append(b, "true"...)
	case kindFalse:
		return append(b, "false"...)
	case kindNumber:
		return append(b, v.text...)
	case kindString:
		return appendPythonString(b, v.text)
	case kindArray:
		b = append(b, '[')
		for i := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.elems[i].appendTo(b)
		}
		return append(b, ']')
	default: // kindObject
		order := make([]int, len(v.keys))
		for i := range order {
			order[i] = i
		}
		// Stable, so that among duplicate keys the last one written comes
		// last and wins, as it does in a Python dict.
		slices.SortStableFunc(order, func(i, j int) int { return strings.Compare(v.keys[i], v.keys[j]) })
		b = append(b, '{')
		first := true
		for n, i := range order {
			if n+1 < len(order) && v.keys[order[n+1]] == v.keys[i] {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendPythonString(b, v.keys[i])
			b = append(b, ':')
			b = v.elems[i].appendTo(b)
		}
		return append(b, '}')
	}
}

const hexDigits = "0123456789abcdef"

// appendPythonString writes s the way Python's ensure_ascii encoder does:
// printable ASCII (0x20-0x7e) as is except '"' and '\\'; the five short
// escapes; everything else as \uXXXX, astral code points as surrogate pairs.
func appendPythonString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			r, size := decodeWTF8(s[i:])
			if r >= 0x10000 {
				r -= 0x10000
				b = appendU(b, 0xD800+r>>10)
				b = appendU(b, 0xDC00+r&0x3FF)
			} else {
				b = appendU(b, r)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
