package lanewayconfig

import (
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent characters each
// cost 1, so "priority_lane" is 1 from "priority_lanes" and "bakfill" 1 from
// "backfill".
func editDistance(a, b string) int {
	a, b = strings.ToLower(a), strings.ToLower(b)
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// maxTypoDistance is how far a word may be from a known key and still count
// as a misspelling of it: short words tolerate less.
func maxTypoDistance(word string) int {
	switch n := len(word); {
	case n <= 4:
		return 1
	case n <= 10:
		return 2
	default:
		return 3
	}
}

// isTypoOf reports whether word is a likely misspelling of one of known.
func isTypoOf(word string, known []string) bool {
	for _, k := range known {
		if editDistance(word, k) <= maxTypoDistance(k) {
			return true
		}
	}
	return false
}

// closest returns the candidates nearest to word within the typo distance
// (several when tied), sorted.
func closest(word string, candidates []string) []string {
	best, out := -1, []string(nil)
	for _, c := range candidates {
		d := editDistance(word, c)
		if d > maxTypoDistance(c) || (best >= 0 && d > best) {
			continue
		}
		if d < best || best < 0 {
			best, out = d, nil
		}
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// tableKeys returns the TOML keys of a struct type, in field order.
func tableKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := tomlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func tomlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if k == "-" {
		return ""
	}
	return k
}

// schemaPaths lists every key path of Config (tables and leaves); entries
// of the databases and brokers maps appear under "default".
var schemaPaths = sync.OnceValue(func() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			k := tomlKey(f)
			if k == "" {
				continue
			}
			p := joinPath(prefix, k)
			out = append(out, p)
			switch f.Type.Kind() {
			case reflect.Struct:
				walk(p, f.Type)
			case reflect.Map:
				if f.Type.Elem().Kind() != reflect.Struct {
					continue // a map of values (category_partitions): any key
				}
				p = joinPath(p, DefaultEntry)
				out = append(out, p)
				walk(p, f.Type.Elem())
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
})

// suggestAnywhere finds known key paths, anywhere in the schema, whose last
// part is the word or a misspelling of it: a key written in the wrong table
// ("[priority_lanes]" at the top level) is pointed at its real place.
func suggestAnywhere(word string) []string {
	best, out := -1, []string(nil)
	for _, p := range schemaPaths() {
		last := p[strings.LastIndexByte(p, '.')+1:]
		if last == DefaultEntry {
			continue
		}
		d := editDistance(word, last)
		if d > maxTypoDistance(last) || (best >= 0 && d > best) {
			continue
		}
		if d < best || best < 0 {
			best, out = d, nil
		}
		out = append(out, p)
	}
	sort.Strings(out)
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// joinPath appends a key to a dotted path, quoting it as TOML does when it
// is not a bare key (empty, or holding characters such as '.' or ' ').
func joinPath(prefix, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
