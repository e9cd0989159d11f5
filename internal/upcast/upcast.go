// Package upcast applies upcasters: pure functions that bring an event
// payload written by an older version of the domain model up to the version
// the running code knows. Chains are validated once,
// when the domain is built, so a broken set of upcasters stops the program
// at start instead of sending events to the DLQ later.
package upcast

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Func transforms one event payload. It may modify and return payload. JSON
// numbers arrive as json.Number, so integers of any size survive; an
// upcaster that computes with a number converts it itself.
type Func func(payload map[string]any) (map[string]any, error)

// Upcaster takes the payload of Event from version From to version To.
type Upcaster struct {
	// Event is the event name without domain or version ("CustomerUpdated").
	Event string
	// From and To are versions, From < To.
	From, To int
	Fn       Func
}

func (u Upcaster) String() string {
	return fmt.Sprintf("%s v%d -> v%d", u.Event, u.From, u.To)
}

// Chains indexes validated upcasters. It is immutable and safe for
// concurrent use.
type Chains struct {
	current map[string]int
	// next[event][from] is the upcaster that starts at version from.
	next map[string]map[int]Upcaster
}

// Build validates ups and indexes them. current maps each registered event
// name to the version the code knows. The checks, per event, are those of
// the reference: every upcaster names a registered event, has versions >= 1
// and a Func; no two start at the same version; no cycle; every chain goes
// up (From < To); all chains end at one terminal version, and that version
// is the registered one. The error names the event and versions; problems
// with several events are joined, in event order.
func Build(ups []Upcaster, current map[string]int) (*Chains, error) {
	c := &Chains{current: make(map[string]int, len(current)), next: make(map[string]map[int]Upcaster)}
	var errs []error
	for name, v := range current {
		if v < 1 {
			errs = append(errs, fmt.Errorf("upcast: event %s has registered version v%d; versions start at v1", name, v))
		}
		c.current[name] = v
	}

	byEvent := make(map[string][]Upcaster)
	for _, u := range ups {
		byEvent[u.Event] = append(byEvent[u.Event], u)
	}
	events := make([]string, 0, len(byEvent))
	for name := range byEvent {
		events = append(events, name)
	}
	sort.Strings(events)
	for _, name := range events {
		next, err := buildEvent(name, byEvent[name], current)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.next[name] = next
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func buildEvent(name string, ups []Upcaster, current map[string]int) (map[int]Upcaster, error) {
	registered, ok := current[name]
	if !ok {
		return nil, fmt.Errorf("upcast: upcaster %s is for an event that is not registered", ups[0])
	}
	next := make(map[int]Upcaster, len(ups))
	for _, u := range ups {
		switch {
		case u.From < 1 || u.To < 1:
			return nil, fmt.Errorf("upcast: upcaster %s: versions start at v1", u)
		case u.From == u.To:
			return nil, fmt.Errorf("upcast: upcaster %s: from and to are the same version", u)
		case u.Fn == nil:
			return nil, fmt.Errorf("upcast: upcaster %s has no function", u)
		}
		if prev, dup := next[u.From]; dup {
			return nil, fmt.Errorf("upcast: two upcasters for %s start at v%d (to v%d and to v%d)", name, u.From, prev.To, u.To)
		}
		next[u.From] = u
	}

	// A cycle is reported before the direction check, because "v2 -> v1"
	// next to "v1 -> v2" is better explained as the loop it makes.
	froms := slices.Sorted(maps.Keys(next))
	for _, start := range froms {
		seen := map[int]bool{start: true}
		path := []int{start}
		for v := next[start].To; ; v = next[v].To {
			path = append(path, v)
			if seen[v] {
				return nil, fmt.Errorf("upcast: upcasters for %s form a cycle: %s", name, versions(path))
			}
			seen[v] = true
			if _, more := next[v]; !more {
				break
			}
		}
	}
	for _, from := range froms {
		if u := next[from]; u.From > u.To {
			return nil, fmt.Errorf("upcast: upcaster %s goes down; from must be lower than to", u)
		}
	}

	var terminals []int
	for _, u := range next {
		if _, more := next[u.To]; !more && !slices.Contains(terminals, u.To) {
			terminals = append(terminals, u.To)
		}
	}
	slices.Sort(terminals)
	if len(terminals) > 1 {
		return nil, fmt.Errorf("upcast: upcasters for %s end at more than one version (%s); every chain must end at the registered version v%d",
			name, versions(terminals), registered)
	}
	if terminals[0] != registered {
		return nil, fmt.Errorf("upcast: upcasters for %s end at v%d but the registered version is v%d", name, terminals[0], registered)
	}
	return next, nil
}

func versions(vs []int) string {
	var b bytes.Buffer
	for i, v := range vs {
		if i > 0 {
			b.WriteString(" -> ")
		}
		fmt.Fprintf(&b, "v%d", v)
	}
	return b.String()
}

// Current returns the registered version of event name.
func (c *Chains) Current(name string) (int, bool) {
	v, ok := c.current[name]
	return v, ok
}

// Path returns the upcasters that take event name from version from to the
// registered version, in the order they apply; empty when from is current.
// Its errors are those of Upcast.
func (c *Chains) Path(name string, from int) ([]Upcaster, error) {
	current, ok := c.current[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("upcast: event %s is not registered", name)
	case from == current:
		return nil, nil
	case from > current:
		return nil, fmt.Errorf("upcast: event %s v%d is newer than this code knows (v%d); deploy the newer code", name, from, current)
	case from < 1:
		return nil, fmt.Errorf("upcast: event %s v%d: versions start at v1", name, from)
	}
	u, ok := c.next[name][from]
	if !ok {
		return nil, fmt.Errorf("upcast: no upcaster from %s v%d; write an upcaster from v%d", name, from, from)
	}
	// Build guarantees every chain ends at current without cycles.
	path := []Upcaster{u}
	for u.To != current {
		u = c.next[name][u.To]
		path = append(path, u)
	}
	return path, nil
}

// Missing returns the versions below the registered one from which no
// chain leads to it (the reference's "gaps"), for `laneway doctor`. A
// version-1 event has none.
func (c *Chains) Missing(name string) []int {
	var gaps []int
	for v := 1; v < c.current[name]; v++ {
		if _, ok := c.next[name][v]; !ok {
			gaps = append(gaps, v)
		}
	}
	return gaps
}

// Upcast brings payload, an event name at version from, to the registered
// version by applying its chain, and returns the new payload and version.
// At the current version it returns payload itself, untouched. The payload
// must be a JSON object; numbers reach the upcasters as json.Number.
func (c *Chains) Upcast(name string, from int, payload json.RawMessage) (json.RawMessage, int, error) {
	path, err := c.Path(name, from)
	if err != nil {
		return nil, 0, err
	}
	if len(path) == 0 {
		return payload, from, nil
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, 0, fmt.Errorf("upcast: event %s v%d: payload is not a JSON object: %w", name, from, err)
	}
	if m == nil {
		return nil, 0, fmt.Errorf("upcast: event %s v%d: payload is null", name, from)
	}
	if dec.More() {
		return nil, 0, fmt.Errorf("upcast: event %s v%d: data after the payload object", name, from)
	}
	for _, u := range path {
		out, err := u.Fn(m)
		if err != nil {
			return nil, 0, fmt.Errorf("upcast: %s: %w", u, err)
		}
		if out == nil {
			return nil, 0, fmt.Errorf("upcast: %s returned a nil payload", u)
		}
		m = out
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, 0, fmt.Errorf("upcast: %s: result is not JSON: %w", path[len(path)-1], err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), path[len(path)-1].To, nil
}
