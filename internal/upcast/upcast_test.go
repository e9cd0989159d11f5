package upcast

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// rename returns an upcaster that renames a field and records the step.
func rename(event string, from, to int, old, new string) Upcaster {
	return Upcaster{Event: event, From: from, To: to, Fn: func(p map[string]any) (map[string]any, error) {
		if v, ok := p[old]; ok {
			p[new] = v
			delete(p, old)
		}
		p["steps"] = append(asSlice(p["steps"]), fmt.Sprintf("v%d->v%d", from, to))
		return p, nil
	}}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func customerChains(t *testing.T) *Chains {
	t.Helper()
	c, err := Build([]Upcaster{
		rename("CustomerUpdated", 1, 2, "name", "full_name"),
		rename("CustomerUpdated", 2, 3, "mail", "email"),
		rename("OrderPlaced", 1, 2, "qty", "quantity"),
	}, map[string]int{"CustomerUpdated": 3, "OrderPlaced": 2, "CustomerCreated": 1})
	require.NoError(t, err)
	return c
}

func TestUpcast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		event       string
		from        int
		in          string
		want        string
		wantVersion int
	}{
		{"v1 to v2", "OrderPlaced", 1, `{"qty":3}`, `{"quantity":3,"steps":["v1->v2"]}`, 2},
		{"v1 to v2 to v3", "CustomerUpdated", 1, `{"name":"Zoë","mail":"z@example.com"}`,
			`{"email":"z@example.com","full_name":"Zoë","steps":["v1->v2","v2->v3"]}`, 3},
		{"v2 gets only v2 to v3", "CustomerUpdated", 2, `{"name":"kept","mail":"z@example.com"}`,
			`{"email":"z@example.com","name":"kept","steps":["v2->v3"]}`, 3},
		{"big integers survive", "OrderPlaced", 1, `{"qty":123456789012345678901234567890,"price":1.50}`,
			`{"price":1.50,"quantity":123456789012345678901234567890,"steps":["v1->v2"]}`, 2},
		{"HTML characters are not escaped", "OrderPlaced", 1, `{"note":"<a&b>"}`, `{"note":"<a&b>","steps":["v1->v2"]}`, 2},
	}
	c := customerChains(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, v, err := c.Upcast(tc.event, tc.from, json.RawMessage(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got), "(-want +got)")
			require.Equal(t, tc.wantVersion, v)
		})
	}
}

func TestUpcastCurrentBypasses(t *testing.T) {
	t.Parallel()
	c := customerChains(t)
	// Not even valid JSON: the bytes are returned untouched, never parsed.
	in := json.RawMessage(`{ "name" : "as is" ,"x":1.0}`)
	got, v, err := c.Upcast("CustomerUpdated", 3, in)
	require.NoError(t, err)
	require.Equal(t, 3, v)
	require.Equal(t, string(in), string(got))
	require.Same(t, &in[0], &got[0], "the same bytes come back")

	got, v, err = c.Upcast("CustomerCreated", 1, in)
	require.NoError(t, err)
	require.Equal(t, 1, v)
	require.Equal(t, string(in), string(got))

	path, err := c.Path("CustomerUpdated", 3)
	require.NoError(t, err)
	require.Empty(t, path)
}

func TestUpcastErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	c, err := Build([]Upcaster{
		rename("CustomerUpdated", 2, 3, "a", "b"),
		{Event: "OrderPlaced", From: 1, To: 2, Fn: func(map[string]any) (map[string]any, error) { return nil, boom }},
		{Event: "OrderShipped", From: 1, To: 2, Fn: func(map[string]any) (map[string]any, error) { return nil, nil }},
		{Event: "OrderPaid", From: 1, To: 2, Fn: func(p map[string]any) (map[string]any, error) {
			p["bad"] = func() {}
			return p, nil
		}},
	}, map[string]int{"CustomerUpdated": 3, "OrderPlaced": 2, "OrderShipped": 2, "OrderPaid": 2})
	require.NoError(t, err)

	tests := []struct {
		name, event string
		from        int
		payload     string
		wantErr     string
	}{
		{"newer than current", "CustomerUpdated", 5, `{}`, "event CustomerUpdated v5 is newer than this code knows (v3); deploy the newer code"},
		{"no path", "CustomerUpdated", 1, `{}`, "no upcaster from CustomerUpdated v1; write an upcaster from v1"},
		{"unregistered event", "Nope", 1, `{}`, "event Nope is not registered"},
		{"version zero", "CustomerUpdated", 0, `{}`, "event CustomerUpdated v0: versions start at v1"},
		{"fn error", "OrderPlaced", 1, `{}`, "upcast: OrderPlaced v1 -> v2: boom"},
		{"nil result", "OrderShipped", 1, `{}`, "OrderShipped v1 -> v2 returned a nil payload"},
		{"unencodable result", "OrderPaid", 1, `{}`, "OrderPaid v1 -> v2: result is not JSON"},
		{"payload not an object", "CustomerUpdated", 2, `[1]`, "event CustomerUpdated v2: payload is not a JSON object"},
		{"payload null", "CustomerUpdated", 2, `null`, "event CustomerUpdated v2: payload is null"},
		{"payload garbage", "CustomerUpdated", 2, `{"a":`, "event CustomerUpdated v2: payload is not a JSON object"},
		{"trailing data", "CustomerUpdated", 2, `{} {}`, "data after the payload object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := c.Upcast(tc.event, tc.from, json.RawMessage(tc.payload))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	_, _, err = c.Upcast("OrderPlaced", 1, json.RawMessage(`{}`))
	require.ErrorIs(t, err, boom, "the upcaster's error is wrapped")
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	noop := func(p map[string]any) (map[string]any, error) { return p, nil }
	up := func(event string, from, to int) Upcaster { return Upcaster{Event: event, From: from, To: to, Fn: noop} }
	current := map[string]int{"CustomerUpdated": 2, "OrderPlaced": 3}
	tests := []struct {
		name    string
		ups     []Upcaster
		current map[string]int
		wantErr string
	}{
		{"from equals to", []Upcaster{up("CustomerUpdated", 2, 2)}, current,
			"upcaster CustomerUpdated v2 -> v2: from and to are the same version"},
		{"goes down", []Upcaster{up("OrderPlaced", 1, 3), up("OrderPlaced", 4, 2)}, current,
			"upcaster OrderPlaced v4 -> v2 goes down; from must be lower than to"},
		{"unregistered event", []Upcaster{up("CustomerDeleted", 1, 2)}, current,
			"upcaster CustomerDeleted v1 -> v2 is for an event that is not registered"},
		{"duplicate source", []Upcaster{up("OrderPlaced", 1, 2), up("OrderPlaced", 2, 3), up("OrderPlaced", 1, 3)}, current,
			"two upcasters for OrderPlaced start at v1 (to v2 and to v3)"},
		{"cycle", []Upcaster{up("CustomerUpdated", 1, 2), up("CustomerUpdated", 2, 1)}, current,
			"upcasters for CustomerUpdated form a cycle: v1 -> v2 -> v1"},
		{"longer cycle", []Upcaster{up("OrderPlaced", 1, 2), up("OrderPlaced", 2, 3), up("OrderPlaced", 3, 1)}, current,
			"upcasters for OrderPlaced form a cycle: v1 -> v2 -> v3 -> v1"},
		{"two terminals", []Upcaster{up("OrderPlaced", 1, 3), up("OrderPlaced", 2, 4)}, current,
			"upcasters for OrderPlaced end at more than one version (v3 -> v4)"},
		{"terminal is not the registered version", []Upcaster{up("CustomerUpdated", 1, 2), up("CustomerUpdated", 2, 3)}, current,
			"upcasters for CustomerUpdated end at v3 but the registered version is v2"},
		{"terminal below the registered version", []Upcaster{up("OrderPlaced", 1, 2)}, current,
			"upcasters for OrderPlaced end at v2 but the registered version is v3"},
		{"no function", []Upcaster{{Event: "CustomerUpdated", From: 1, To: 2}}, current,
			"upcaster CustomerUpdated v1 -> v2 has no function"},
		{"version zero", []Upcaster{up("CustomerUpdated", 0, 2)}, current,
			"upcaster CustomerUpdated v0 -> v2: versions start at v1"},
		{"registered version zero", nil, map[string]int{"CustomerUpdated": 0},
			"event CustomerUpdated has registered version v0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Build(tc.ups, tc.current)
			require.ErrorContains(t, err, tc.wantErr)
			require.Nil(t, c)
		})
	}
}

func TestBuildJoinsErrorsOfSeveralEvents(t *testing.T) {
	t.Parallel()
	noop := func(p map[string]any) (map[string]any, error) { return p, nil }
	_, err := Build([]Upcaster{
		{Event: "OrderPlaced", From: 1, To: 5, Fn: noop},
		{Event: "CustomerUpdated", From: 1, To: 9, Fn: noop},
	}, map[string]int{"CustomerUpdated": 2, "OrderPlaced": 3})
	require.EqualError(t, err, "upcast: upcasters for CustomerUpdated end at v9 but the registered version is v2\n"+
		"upcast: upcasters for OrderPlaced end at v5 but the registered version is v3")
}

func TestPathAndMissing(t *testing.T) {
	t.Parallel()
	noop := func(p map[string]any) (map[string]any, error) { return p, nil }
	c, err := Build([]Upcaster{
		{Event: "OrderPlaced", From: 2, To: 4, Fn: noop},
		{Event: "OrderPlaced", From: 4, To: 5, Fn: noop},
		{Event: "OrderPlaced", From: 3, To: 5, Fn: noop},
	}, map[string]int{"OrderPlaced": 5, "CustomerCreated": 1})
	require.NoError(t, err)

	path, err := c.Path("OrderPlaced", 2)
	require.NoError(t, err)
	var steps []string
	for _, u := range path {
		steps = append(steps, u.String())
	}
	require.Equal(t, []string{"OrderPlaced v2 -> v4", "OrderPlaced v4 -> v5"}, steps)

	require.Equal(t, []int{1}, c.Missing("OrderPlaced"), "v1 has no upcaster; v2, v3 and v4 do")
	require.Empty(t, c.Missing("CustomerCreated"), "a v1 event has no gap")
	v, ok := c.Current("OrderPlaced")
	require.True(t, ok)
	require.Equal(t, 5, v)
}

// TestChainsProperty: for random chains 1..n (+1 steps), upcasting from any
// k ends at n and applies exactly the n-k steps k, k+1, ..., n-1 in order.
func TestChainsProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "n")
		var ups []Upcaster
		for _, from := range rapid.Permutation(rangeInts(1, n-1)).Draw(t, "registration order") {
			ups = append(ups, Upcaster{Event: "E", From: from, To: from + 1, Fn: func(p map[string]any) (map[string]any, error) {
				p["steps"] = append(asSlice(p["steps"]), json.Number(fmt.Sprint(from)))
				return p, nil
			}})
		}
		c, err := Build(ups, map[string]int{"E": n})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		k := rapid.IntRange(1, n).Draw(t, "k")
		got, v, err := c.Upcast("E", k, json.RawMessage(`{"id":98765432109876543210}`))
		if err != nil {
			t.Fatalf("upcast: %v", err)
		}
		if v != n {
			t.Fatalf("ended at v%d, want v%d", v, n)
		}
		if k == n {
			if string(got) != `{"id":98765432109876543210}` {
				t.Fatalf("current version was modified: %s", got)
			}
			return
		}
		var out struct {
			ID    json.Number `json:"id"`
			Steps []int       `json:"steps"`
		}
		if err := json.Unmarshal(got, &out); err != nil {
			t.Fatalf("result %s: %v", got, err)
		}
		if want := rangeInts(k, n-1); fmt.Sprint(out.Steps) != fmt.Sprint(want) {
			t.Fatalf("steps %v, want %v", out.Steps, want)
		}
		if out.ID != "98765432109876543210" {
			t.Fatalf("id became %s", out.ID)
		}
	})
}

// TestChainsPropertyJumps: chains whose steps skip versions still end at n,
// visit strictly increasing versions, and Path agrees with Upcast.
func TestChainsPropertyJumps(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 20).Draw(t, "n")
		// A random increasing sequence of versions ending at n.
		stops := []int{n}
		for v := n - 1; v >= 1; v-- {
			if rapid.Bool().Draw(t, fmt.Sprintf("stop%d", v)) {
				stops = append([]int{v}, stops...)
			}
		}
		var ups []Upcaster
		for i := 0; i+1 < len(stops); i++ {
			from, to := stops[i], stops[i+1]
			ups = append(ups, Upcaster{Event: "E", From: from, To: to, Fn: func(p map[string]any) (map[string]any, error) {
				p["at"] = json.Number(fmt.Sprint(to))
				return p, nil
			}})
		}
		c, err := Build(ups, map[string]int{"E": n})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		for i, k := range stops {
			path, err := c.Path("E", k)
			if err != nil {
				t.Fatalf("path from v%d: %v", k, err)
			}
			if len(path) != len(stops)-1-i {
				t.Fatalf("path from v%d has %d steps, want %d", k, len(path), len(stops)-1-i)
			}
			_, v, err := c.Upcast("E", k, json.RawMessage(`{}`))
			if err != nil || v != n {
				t.Fatalf("upcast from v%d: v%d, %v", k, v, err)
			}
		}
		if got := len(c.Missing("E")); got != n-len(stops) {
			t.Fatalf("missing %v, want %d gaps", c.Missing("E"), n-len(stops))
		}
	})
}

func rangeInts(lo, hi int) []int {
	var s []int
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}
