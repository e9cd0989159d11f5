// Package flatjson decodes a JSON object into a flat struct (fields of
// string, bool, integer, float and []byte kinds) without encoding/json's
// reflection walk and its second validation pass: the handler of every
// event decodes its payload, and with encoding/json that one call was the
// largest cost of handling a small event.
//
// It is a fast path, never a second dialect. Decode reports false for
// anything it does not take exactly as encoding/json would (an escape in a
// string, a key that is not an exact field name, a number that needs a
// conversion error, a null struct, trailing data...), and the caller then
// decodes the same bytes with encoding/json, which also words any error.
// The property test holds it to that: wherever Decode succeeds,
// json.Unmarshal succeeds with the same value.
package flatjson

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/laneway/laneway/internal/plainbytes"
)

type kind uint8

const (
	kString kind = iota + 1
	kBool
	kInt
	kUint
	kFloat
	kBytes
)

type field struct {
	name  string
	index int
	kind  kind
	bits  int
}

// Plan decodes into one struct type. The zero Plan is not usable; a nil
// *Plan (the type is not flat) decodes nothing.
type Plan struct {
	fields []field
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	byteType        = reflect.TypeFor[byte]()
	numberType      = reflect.TypeFor[json.Number]()
)

func customDecoder(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

// Compile returns the plan of struct type t, or nil when t is not flat:
// an embedded field, a field of another kind, a tag option other than
// omitempty/omitzero, a type with its own JSON or text decoding, or two
// fields whose names differ only in case.
func Compile(t reflect.Type) *Plan {
	if t == nil || t.Kind() != reflect.Struct || customDecoder(t) {
		return nil
	}
	p := &Plan{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		for o := range strings.SplitSeq(opts, ",") {
			if o != "" && o != "omitempty" && o != "omitzero" {
				return nil
			}
		}
		if name == "" {
			name = f.Name
		}
		if !plainName(name) {
			return nil // encoding/json's own rules for odd tag names, Unicode case folding
		}
		if customDecoder(f.Type) || f.Type == numberType {
			return nil // decoded by rules of their own
		}
		fd := field{name: name, index: i}
		switch f.Type.Kind() {
		case reflect.String:
			fd.kind = kString
		case reflect.Bool:
			fd.kind = kBool
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			fd.kind, fd.bits = kInt, f.Type.Bits()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			fd.kind, fd.bits = kUint, f.Type.Bits()
		case reflect.Float32, reflect.Float64:
			fd.kind, fd.bits = kFloat, f.Type.Bits()
		case reflect.Slice:
			if f.Type.Elem() != byteType {
				return nil
			}
			fd.kind = kBytes
		default:
			return nil
		}
		for _, o := range p.fields {
			if strings.EqualFold(o.name, name) {
				return nil
			}
		}
		p.fields = append(p.fields, fd)
	}
	return p
}

func plainName(s string) bool {
	for _, c := range []byte(s) {
		if !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// Decode decodes data into dst, a pointer to a zero value of the plan's
// type. It reports false when it did not, perhaps after writing some
// fields: the caller then zeroes dst and uses encoding/json.
func (p *Plan) Decode(data []byte, dst any) bool {
	if p == nil {
		return false
	}
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false
	}
	v = v.Elem()
	d := decoder{b: data}
	if !d.consume('{') {
		return false
	}
	if !d.consume('}') {
		for {
			key, ok := d.str()
			if !ok || !d.consume(':') {
				return false
			}
			f := p.lookup(key)
			if f == nil || !d.value(v.Field(f.index), f) {
				return false
			}
			if d.consume(',') {
				continue
			}
			if d.consume('}') {
				break
			}
			return false
		}
	}
	d.ws()
	return d.i == len(d.b)
}

func (p *Plan) lookup(key []byte) *field {
	for i := range p.fields {
		if p.fields[i].name == string(key) {
			return &p.fields[i]
		}
	}
	return nil
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string without escapes, of valid UTF-8 and no control
// characters, and returns its contents.
func (d *decoder) str() ([]byte, bool) {
	if !d.consume('"') {
		return nil, false
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		return nil, false
	}
	s := d.b[d.i : d.i+end]
	ascii := true
	// s holds no '"': what stops the skip is a byte the loop must see.
	for _, c := range s[plainbytes.Skip(s, 0):] {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(s) {
		return nil, false // encoding/json replaces invalid bytes
	}
	d.i += end + 1
	return s, true
}

func (d *decoder) literal(lit string) bool {
	if bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
		d.i += len(lit)
		return true
	}
	return false
}

// number reads a JSON number; integral reports that it has neither a
// fraction nor an exponent.
func (d *decoder) number() (s string, integral, ok bool) {
	start := d.i
	b := d.b
	i := d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return "", false, false
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		integral = false
		if i = digits(b, i+1); i < 0 {
			return "", false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integral = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(b, i); i < 0 {
			return "", false, false
		}
	}
	d.i = i
	return string(b[start:i]), integral, true
}

// digits skips the digits of b from i, at least one: the index after
// them, or -1.
func digits(b []byte, i int) int {
	n := i
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	if i == n {
		return -1
	}
	return i
}

func (d *decoder) value(v reflect.Value, f *field) bool {
	d.ws()
	if d.i >= len(d.b) {
		return false
	}
	if d.b[d.i] == 'n' {
		return d.literal("null") // null leaves the field as it is
	}
	switch f.kind {
	case kString:
		s, ok := d.str()
		if ok {
			v.SetString(string(s))
		}
		return ok
	case kBytes:
		s, ok := d.str()
		if !ok {
			return false
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(out, s)
		if err != nil {
			return false
		}
		v.SetBytes(out[:n])
		return true
	case kBool:
		switch {
		case d.literal("true"):
			v.SetBool(true)
		case d.literal("false"):
			v.SetBool(false)
		default:
			return false
		}
		return true
	case kInt, kUint, kFloat:
		s, integral, ok := d.number()
		if !ok {
			return false
		}
		switch f.kind {
		case kInt:
			n, err := strconv.ParseInt(s, 10, f.bits)
			if !integral || err != nil {
				return false
			}
			v.SetInt(n)
		case kUint:
			n, err := strconv.ParseUint(s, 10, f.bits)
			if !integral || err != nil {
				return false
			}
			v.SetUint(n)
		default:
			x, err := strconv.ParseFloat(s, f.bits)
			if err != nil {
				return false
			}
			v.SetFloat(x)
		}
		return true
	}
	return false
}
