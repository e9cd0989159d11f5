package lanewayconfig

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decoder copies a generic TOML map onto Config structs (found by their toml
// tags), collecting problems instead of stopping at the first one.
type decoder struct {
	lookup func(string) (string, bool)
	// substitute resolves ${VAR} references. It is off when checking an
	// overlay that is not applied: its variables may exist only in the
	// environment it is meant for, so only its keys and literal types are
	// checked.
	substitute bool
	prefix     string            // "staging." while checking an overlay that is not applied
	origins    map[string]string // key path -> overlay that set it
	problems   []Problem
	failed     map[string]bool // key paths with a problem, so validation does not pile on
}

func newDecoder(lookup func(string) (string, bool), substitute bool, prefix string, origins map[string]string) *decoder {
	return &decoder{lookup: lookup, substitute: substitute, prefix: prefix, origins: origins, failed: map[string]bool{}}
}

// display renders a config key path as the user wrote it.
func (d *decoder) display(path string) string { return d.prefix + withOrigin(d.origins, path) }

// displayAs renders other with the same overlay prefix as path.
func (d *decoder) displayAs(path, other string) string {
	if o, ok := d.origins[path]; ok {
		return d.prefix + o + "." + other
	}
	return d.prefix + other
}

func withOrigin(origins map[string]string, path string) string {
	if o, ok := origins[path]; ok {
		return o + "." + path
	}
	return path
}

func (d *decoder) add(path, value, format string, args ...any) {
	d.failed[path] = true
	d.problems = append(d.problems, Problem{Path: d.display(path), Value: value, Msg: fmt.Sprintf(format, args...)})
}

// table decodes raw onto the struct v, known keys in field order, then
// reports unknown keys in sorted order.
func (d *decoder) table(path string, raw map[string]any, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		key := tomlKey(t.Field(i))
		if key == "" {
			continue
		}
		if rv, ok := raw[key]; ok {
			d.value(joinPath(path, key), rv, v.Field(i))
		}
	}
	known := tableKeys(t)
	for _, k := range sortedKeys(raw) {
		if !slices.Contains(known, k) {
			d.unknown(path, k, raw[k], known)
		}
	}
}

func (d *decoder) unknown(parent, key string, raw any, siblings []string) {
	path := joinPath(parent, key)
	var sugg []string
	for _, s := range closest(key, siblings) {
		sugg = append(sugg, d.displayAs(path, joinPath(parent, s)))
	}
	if len(sugg) == 0 {
		for _, s := range suggestAnywhere(key) {
			sugg = append(sugg, d.displayAs(path, s))
		}
	}
	msg := "unknown key"
	_, isTable := raw.(map[string]any)
	switch {
	case len(sugg) > 0:
		msg += "; did you mean " + quoteList(sugg) + "?"
	case parent == "" && isTable && d.prefix == "" && d.origins[path] == "":
		msg += "; an environment overlay is a table of top-level keys such as [" + key + ".server.priority_lanes] (see docs/configuration.md)"
	}
	value := formatRaw(raw)
	if l := strings.ToLower(key); value != "" && (strings.Contains(l, "pass") || strings.Contains(l, "secret") || strings.Contains(l, "token")) {
		value = strconv.Quote(redacted) // the value of a misplaced secret must not reach logs
	}
	d.add(path, value, "%s", msg)
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "one of " + strings.Join(q, ", ")
}

func (d *decoder) value(path string, raw any, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			d.add(path, formatRaw(raw), "expected a table ([%s]), got %s", d.display(path), rawKind(raw))
			return
		}
		d.table(path, m, v)
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.Struct {
			d.values(path, raw, v)
			return
		}
		d.entries(path, raw, v)
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.typeErr(path, raw, v.Kind())
			return
		}
		ps, err := parseRefs(s)
		if err == nil && d.substitute {
			s, err = expand(ps, d.lookup)
		}
		if err != nil {
			d.add(path, formatRaw(raw), "%v", err)
			return
		}
		v.SetString(s)
	case reflect.Bool, reflect.Int, reflect.Float64:
		if s, ok := raw.(string); ok {
			d.reference(path, s, v)
			return
		}
		d.literal(path, raw, v)
	default:
		// Only the kinds above occur in Config; a new field of another kind
		// must be taught here.
		d.add(path, formatRaw(raw), "internal error: unsupported field kind %s", v.Kind())
	}
}

// entries decodes a map of named tables ([databases.NAME]). An entry starts
// from its provider default, not from the entry Default holds: an entry that
// switches provider must not inherit the other provider's URL.
func (d *decoder) entries(path string, raw any, v reflect.Value) {
	m, ok := raw.(map[string]any)
	elem := v.Type().Elem()
	if !ok {
		d.add(path, formatRaw(raw), "expected a table of named entries such as [%s.%s], got %s", d.display(path), DefaultEntry, rawKind(raw))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, name := range sortedKeys(m) {
		ep := joinPath(path, name)
		if name != DefaultEntry && isTypoOf(name, []string{DefaultEntry}) && elem != reflect.TypeFor[HandlerSettings]() {
			d.add(ep, "", "unknown entry; did you mean %q? (the engine uses the entry named %q)",
				d.displayAs(ep, joinPath(path, DefaultEntry)), DefaultEntry)
			continue
		}
		em, ok := m[name].(map[string]any)
		if !ok {
			msg := fmt.Sprintf("expected a table ([%s]) with keys %s, got %s", d.display(ep), strings.Join(tableKeys(elem), ", "), rawKind(m[name]))
			if slices.Contains(tableKeys(elem), name) {
				msg += fmt.Sprintf("; did you mean %q?", d.displayAs(ep, joinPath(joinPath(path, DefaultEntry), name)))
			}
			d.add(ep, formatRaw(m[name]), "%s", msg)
			continue
		}
		e := entryTemplate(elem)
		d.table(ep, em, e)
		v.SetMapIndex(reflect.ValueOf(name), e)
	}
}

// values decodes a table of plain values keyed by any name
// ([server.category_partitions] customer = 8).
func (d *decoder) values(path string, raw any, v reflect.Value) {
	m, ok := raw.(map[string]any)
	if !ok {
		d.add(path, formatRaw(raw), "expected a table ([%s]) of name = value, got %s", d.display(path), rawKind(raw))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, name := range sortedKeys(m) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(joinPath(path, name), m[name], e)
		v.SetMapIndex(reflect.ValueOf(name), e)
	}
}

func entryTemplate(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch t {
	case reflect.TypeFor[Database]():
		v.Set(reflect.ValueOf(Database{Provider: DatabaseProviderDefault}))
	case reflect.TypeFor[Broker]():
		v.Set(reflect.ValueOf(Broker{Provider: BrokerProviderDefault, MinReplicasTimeoutMS: MinReplicasTimeoutMSDefault}))
	}
	return v
}

// reference handles a string given for a boolean or numeric key: accepted
// only when it is exactly one ${VAR} reference, whose value is then parsed.
func (d *decoder) reference(path, s string, v reflect.Value) {
	ps, err := parseRefs(s)
	if err != nil {
		d.add(path, formatRaw(s), "%v", err)
		return
	}
	if !isSingleRef(ps) {
		d.typeErr(path, s, v.Kind())
		return
	}
	if !d.substitute {
		return
	}
	out, err := expand(ps, d.lookup)
	if err != nil {
		d.add(path, formatRaw(s), "%v", err)
		return
	}
	in := strings.TrimSpace(out)
	fail := func(want string) {
		d.add(path, formatRaw(s), "${%s} resolved to %q: expected %s", ps[0].name, out, want)
	}
	switch v.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(in)
		if err != nil {
			fail("a boolean (true or false)")
			return
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.ParseInt(in, 10, 64)
		if err != nil || v.OverflowInt(n) {
			fail("an integer")
			return
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(in, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			fail("a finite number")
			return
		}
		v.SetFloat(f)
	}
}

func (d *decoder) literal(path string, raw any, v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.typeErr(path, raw, v.Kind())
			return
		}
		v.SetBool(b)
	case reflect.Int:
		switch x := raw.(type) {
		case int64:
			if v.OverflowInt(x) {
				d.add(path, formatRaw(raw), "integer out of range")
				return
			}
			v.SetInt(x)
		case float64:
			d.add(path, formatRaw(raw), "expected an integer, got a float (write a whole number without a decimal point)")
		default:
			d.typeErr(path, raw, v.Kind())
		}
	case reflect.Float64:
		switch x := raw.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				d.add(path, formatRaw(raw), "must be a finite number")
				return
			}
			v.SetFloat(x)
		case int64:
			v.SetFloat(float64(x))
		default:
			d.typeErr(path, raw, v.Kind())
		}
	}
}

func (d *decoder) typeErr(path string, raw any, want reflect.Kind) {
	wantName := map[reflect.Kind]string{
		reflect.String: "a string", reflect.Bool: "a boolean", reflect.Int: "an integer", reflect.Float64: "a number",
	}[want]
	msg := fmt.Sprintf("expected %s, got %s", wantName, rawKind(raw))
	if s, ok := raw.(string); ok {
		switch {
		case strings.Contains(s, "${"):
			msg += fmt.Sprintf("; a ${VAR} reference becomes %s only when it is the whole value", wantName)
		case want == reflect.Bool && isBool(s), want == reflect.Int && isInt(s), want == reflect.Float64 && isFloat(s):
			msg += "; remove the quotes"
		}
	}
	d.add(path, formatRaw(raw), "%s", msg)
}

func isBool(s string) bool  { return s == "true" || s == "false" }
func isInt(s string) bool   { _, err := strconv.ParseInt(s, 10, 64); return err == nil }
func isFloat(s string) bool { _, err := strconv.ParseFloat(s, 64); return err == nil }

func rawKind(raw any) string {
	switch raw.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date/time"
	default:
		return fmt.Sprintf("%T", raw)
	}
}

// formatRaw renders a decoded TOML value in TOML syntax; "" for a table.
func formatRaw(raw any) string {
	switch x := raw.(type) {
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatRaw(e)
			if parts[i] == "" {
				parts[i] = "{...}"
			}
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		return "[{...}]"
	default:
		return fmt.Sprint(raw)
	}
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
