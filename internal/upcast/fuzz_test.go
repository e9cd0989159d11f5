package upcast

import (
	"encoding/json"
	"testing"
)

// FuzzBuild feeds Build arbitrary upcaster sets (pairs of bytes are From and
// To, the last byte the registered version). Build must never panic, and
// when it accepts a set every version it has an upcaster for must reach the
// registered version through strictly increasing steps, each source used
// once.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{1, 2, 2, 3, 3})
	f.Add([]byte{1, 2, 2, 1, 2})
	f.Add([]byte{1, 3, 2, 4, 4})
	f.Add([]byte{1, 2, 1, 3, 3})
	f.Add([]byte{0, 1, 1})
	f.Add([]byte{5})
	f.Fuzz(func(t *testing.T, spec []byte) {
		if len(spec) == 0 || len(spec) > 64 {
			return
		}
		current := int(spec[len(spec)-1] % 16)
		noop := func(p map[string]any) (map[string]any, error) { return p, nil }
		var ups []Upcaster
		for i := 0; i+1 < len(spec)-1; i += 2 {
			ups = append(ups, Upcaster{Event: "E", From: int(spec[i] % 16), To: int(spec[i+1] % 16), Fn: noop})
		}
		c, err := Build(ups, map[string]int{"E": current})
		if err != nil {
			return
		}
		for _, u := range ups {
			path, err := c.Path("E", u.From)
			if err != nil {
				t.Fatalf("accepted %v but no path from v%d: %v", ups, u.From, err)
			}
			at := u.From
			for _, step := range path {
				if step.From != at || step.To <= step.From {
					t.Fatalf("bad step %s at v%d", step, at)
				}
				at = step.To
			}
			if at != current {
				t.Fatalf("path from v%d ends at v%d, want v%d", u.From, at, current)
			}
			if _, v, err := c.Upcast("E", u.From, json.RawMessage(`{}`)); err != nil || v != current {
				t.Fatalf("upcast from v%d: v%d, %v", u.From, v, err)
			}
		}
	})
}
