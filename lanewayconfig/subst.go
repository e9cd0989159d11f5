package lanewayconfig

import (
	"fmt"
	"strings"
)

// A piece of a string value: literal text or one ${NAME[:-default]} reference.
type piece struct {
	lit    string
	ref    bool
	name   string
	def    string
	hasDef bool
}

// parseRefs splits s into literal text and references. "$$" is a literal
// "$"; a "$" followed by anything but "{" or "$" is kept as is, so most
// passwords need no escaping. A default runs to the first "}".
func parseRefs(s string) ([]piece, error) {
	var (
		out []piece
		lit strings.Builder
	)
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, piece{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			lit.WriteByte(s[i])
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			lit.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed reference %q: expected ${NAME} or ${NAME:-default} (write $$ for a literal $)", s[i:])
			}
			inner := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(inner, ":-")
			if !validVarName(name) {
				return nil, fmt.Errorf("invalid reference %q: expected ${NAME} or ${NAME:-default} where NAME is letters, digits and '_' (write $$ for a literal $)", "${"+inner+"}")
			}
			flush()
			out = append(out, piece{ref: true, name: name, def: def, hasDef: hasDef})
			i += 2 + end + 1
		default:
			lit.WriteByte('$')
			i++
		}
	}
	flush()
	return out, nil
}

func validVarName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// isSingleRef reports whether the whole value is exactly one reference,
// the only form that is converted to a non-string key's type.
func isSingleRef(ps []piece) bool { return len(ps) == 1 && ps[0].ref }

// expand resolves the references. Like the shell, ${NAME:-default} uses the
// default when NAME is unset or empty.
func expand(ps []piece, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for _, p := range ps {
		if !p.ref {
			b.WriteString(p.lit)
			continue
		}
		v, ok := lookup(p.name)
		switch {
		case p.hasDef && (!ok || v == ""):
			v = p.def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", p.name, p.name)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
