package protean

import "testing"

func TestNormalizedName(t *testing.T) {
	t.Parallel()
	// The pairs Protean's own documentation and tests give, plus the
	// domains of this repository.
	cases := []struct{ in, want string }{
		{"Customers", "customers"},
		{"Foo", "foo"},
		{"Foo20", "foo20"},
		{"Foo 20", "foo_20"},
		{"FooBar", "foobar"},
		{"Foo Bar", "foo_bar"},
		{"Foo Bar Baz", "foo_bar_baz"},
		{"Foo-Bar", "foo_bar"},
		{"Foo_Bar", "foo_bar"},
		{"Foo Bar 20", "foo_bar_20"},
		{"Donald E. Knuth", "donald_e_knuth"},
		{"MyDomain", "mydomain"},
		{"My Domain", "my_domain"},
		{"My-Domain", "my_domain"},
		{"My Domain 1", "my_domain_1"},
		{"My Domain 1.0", "my_domain_1_0"},
		{"--Shop--", "shop"},
		{"a--b", "a_b"},
		{"a_-b", "a__b"},
		{"Shop!!!Front", "shop_front"},
	}
	for _, c := range cases {
		got, err := NormalizedName(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizedName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizedNameRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "---", "...", "Café"} {
		if got, err := NormalizedName(in); err == nil {
			t.Errorf("NormalizedName(%q) = %q, want an error", in, got)
		}
	}
}
