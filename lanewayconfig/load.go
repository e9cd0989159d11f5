package lanewayconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// LoadOptions says where to find domain.toml and which overlay to apply.
type LoadOptions struct {
	// Dir is the domain directory (the --domain flag). Defaults to ".".
	Dir string

	// Env names the overlay table to merge over the base. Defaults to the
	// value of LANEWAY_ENV (read through LookupEnv); "" there too means no
	// overlay.
	Env string

	// LookupEnv reads environment variables, both LANEWAY_ENV and the ${VAR}
	// references in the file. Defaults to os.LookupEnv; tests pass a map.
	LookupEnv func(string) (string, bool)

	// AllowMissing makes Load return Default() when neither file exists,
	// instead of an error wrapping ErrNotFound (`laneway demo` runs without a
	// file). Defaults to false.
	AllowMissing bool
}

func (o LoadOptions) lookup() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

// selectEnv returns the environment name and where it came from, for
// messages.
func (o LoadOptions) selectEnv() (name, from string) {
	if e := strings.TrimSpace(o.Env); e != "" {
		return e, "--env"
	}
	if e, ok := o.lookup()(EnvVar); ok && strings.TrimSpace(e) != "" {
		return strings.TrimSpace(e), EnvVar
	}
	return "", ""
}

// Load reads DIR/.domain.toml or, when it does not exist, DIR/domain.toml,
// and returns the validated configuration (see the package documentation for
// the pipeline). Errors: one wrapping ErrNotFound when neither file exists
// (unless AllowMissing), *SyntaxError for invalid TOML, *ValidationError
// listing every problem.
func Load(opts LoadOptions) (*Config, error) {
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	var tried []string
	for _, name := range []string{HiddenFileName, FileName} {
		p := filePath(dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			tried = append(tried, p)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		return parse(data, p, opts)
	}
	if opts.AllowMissing {
		c := Default()
		c.env, _ = opts.selectEnv()
		return c, nil
	}
	hint := "pass --domain DIR to name the directory that holds it"
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		hint = fmt.Sprintf("directory %s does not exist; %s", dir, hint)
	}
	return nil, fmt.Errorf("%w: tried %s; %s", ErrNotFound, strings.Join(tried, ", "), hint)
}

// filePath joins dir and name, keeping a leading "./" so messages show
// where the file was looked for.
func filePath(dir, name string) string {
	p := filepath.Join(dir, name)
	if !strings.ContainsRune(p, filepath.Separator) {
		p = "." + string(filepath.Separator) + p
	}
	return p
}

// Parse runs Load's pipeline on the contents of a domain.toml. opts.Dir and
// opts.AllowMissing are not used.
func Parse(data []byte, opts LoadOptions) (*Config, error) {
	return parse(data, "", opts)
}

func parse(data []byte, source string, opts LoadOptions) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, syntaxError(source, data, err)
	}
	if raw == nil {
		raw = map[string]any{}
	}

	env, envFrom := opts.selectEnv()
	base, overlays := splitOverlays(raw)
	origins := map[string]string{}
	var problems []Problem
	applied := false
	if env != "" {
		if ov, ok := overlays[env]; ok {
			merge(base, ov, "", joinPath("", env), origins)
			applied = true
		} else if len(overlays) > 0 {
			problems = append(problems, missingOverlay(env, envFrom, overlays))
		}
	}

	c := Default()
	c.source, c.env, c.overlay, c.origins = source, env, applied, origins
	d := newDecoder(opts.lookup(), true, "", origins)
	d.table("", base, reflect.ValueOf(c).Elem())
	problems = append(problems, d.problems...)

	// Overlays that are not applied are checked too, so a misspelled key in
	// [production...] fails on a developer's machine, not at deploy time.
	for _, name := range sortedOverlayNames(overlays) {
		if applied && name == env {
			continue
		}
		check := newDecoder(nil, false, joinPath("", name)+".", nil)
		check.table("", overlays[name], reflect.ValueOf(Default()).Elem())
		problems = append(problems, check.problems...)
	}

	c.fillDefaults()
	c.resolveFiles()
	v := validator{c: c, skip: d.failed}
	v.run()
	problems = append(problems, v.problems...)
	if len(problems) > 0 {
		return nil, &ValidationError{Source: source, Problems: problems}
	}
	return c, nil
}

func syntaxError(source string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg += fmt.Sprintf(" (last key %q)", pe.LastKey)
		}
		line, col := errorPosition(data, pe.Position)
		return &SyntaxError{File: source, Line: line, Col: col, Msg: msg, Err: err}
	}
	return &SyntaxError{File: source, Line: 1, Col: 1, Msg: err.Error(), Err: err}
}

// fillDefaults adds the "default" database and broker entries when missing
// and gives an entry with an empty url its provider's default URL (postgres
// has none: validation then reports the missing url).
func (c *Config) fillDefaults() {
	if c.Databases == nil {
		c.Databases = map[string]Database{}
	}
	if _, ok := c.Databases[DefaultEntry]; !ok {
		c.Databases[DefaultEntry] = defaultDatabase()
	}
	for k, db := range c.Databases {
		if db.URL == "" && db.Provider == DatabaseProviderSQLite {
			db.URL = DatabaseURLDefault
			c.Databases[k] = db
		}
	}
	if c.Brokers == nil {
		c.Brokers = map[string]Broker{}
	}
	if _, ok := c.Brokers[DefaultEntry]; !ok {
		c.Brokers[DefaultEntry] = defaultBroker()
	}
	for k, b := range c.Brokers {
		if b.URL == "" {
			b.URL = BrokerURLDefault
			c.Brokers[k] = b
		}
	}
}

// splitOverlays separates environment overlays from the base. A top-level
// key that is not a config key is an overlay when:
//   - its value is a table;
//   - its name is not a likely misspelling of a top-level key ("sever") and
//     not the name of a nested table or key ("priority_lanes", "http");
//   - the table is empty, or at least one of its keys is a top-level key or
//     a likely misspelling of one.
//
// Everything else stays in the base, where the decoder reports it as an
// unknown key with a suggestion.
func splitOverlays(raw map[string]any) (base map[string]any, overlays map[string]map[string]any) {
	known := tableKeys(reflect.TypeFor[Config]())
	base, overlays = map[string]any{}, map[string]map[string]any{}
	for k, v := range raw {
		m, isTable := v.(map[string]any)
		if slices.Contains(known, k) || !isTable || isTypoOf(k, known) || isSchemaName(k) || !looksLikeOverlay(m, known) {
			base[k] = v
			continue
		}
		overlays[k] = m
	}
	return base, overlays
}

func looksLikeOverlay(m map[string]any, known []string) bool {
	if len(m) == 0 {
		return true
	}
	for k := range m {
		if slices.Contains(known, k) || isTypoOf(k, known) {
			return true
		}
	}
	return false
}

func isSchemaName(k string) bool {
	for _, p := range schemaPaths() {
		if p == k || strings.HasSuffix(p, "."+k) {
			return true
		}
	}
	return false
}

func sortedOverlayNames(overlays map[string]map[string]any) []string {
	names := make([]string, 0, len(overlays))
	for k := range overlays {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// merge deep-merges src over dst: tables merge key by key, anything else
// replaces. Every key path src sets is recorded in origins.
func merge(dst, src map[string]any, prefix, origin string, origins map[string]string) {
	for k, sv := range src {
		p := joinPath(prefix, k)
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm, p, origin, origins)
				continue
			}
		}
		dst[k] = sv
		markOrigin(p, sv, origin, origins)
	}
}

func markOrigin(path string, v any, origin string, origins map[string]string) {
	origins[path] = origin
	if m, ok := v.(map[string]any); ok {
		for k, sv := range m {
			markOrigin(joinPath(path, k), sv, origin, origins)
		}
	}
}

func missingOverlay(env, from string, overlays map[string]map[string]any) Problem {
	names := sortedOverlayNames(overlays)
	tables := make([]string, len(names))
	for i, n := range names {
		tables[i] = "[" + joinPath("", n) + "]"
	}
	msg := fmt.Sprintf("the file has no [%s] overlay table (its overlays: %s)", joinPath("", env), strings.Join(tables, ", "))
	if s := closest(env, names); len(s) > 0 {
		msg += "; did you mean " + quoteList(s) + "?"
	}
	msg += fmt.Sprintf("; add an empty [%s] table if this environment needs no overrides", joinPath("", env))
	return Problem{Path: from, Value: strconv.Quote(env), Msg: msg}
}

// errorPosition computes line and column from the parser's byte offset: the
// parser counts an error found at a line's end ("[server" followed by a
// newline) on the next line, where an editor would not look.
func errorPosition(data []byte, pos toml.Position) (line, col int) {
	start := pos.Start
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		start += 3 // the parser skips a UTF-8 byte order mark
	}
	if start < 0 || start > len(data) || pos.Line < 1 {
		return max(pos.Line, 1), max(pos.Col, 1)
	}
	before := data[:start]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}
