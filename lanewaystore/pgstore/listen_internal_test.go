package pgstore

import "testing"

func TestAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		payload, schema string
		want            bool
	}{
		{"laneway_a", "laneway_a", true},
		{"", "laneway_a", true},
		{"laneway_b", "laneway_a", false},
		{"public", "laneway_a", false},
		{"", "", true},
	} {
		if got := accepts(tc.payload, tc.schema); got != tc.want {
			t.Errorf("accepts(%q, %q) = %v, want %v", tc.payload, tc.schema, got, tc.want)
		}
	}
}
