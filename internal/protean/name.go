// Package protean holds the rules Laneway shares with Protean services on
// the same Redis: how Protean derives the domain prefix of its stream names.
package protean

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// NormalizedName returns the domain name as Protean prefixes it to every
// stream category ("<normalized>::<category>"): runs of characters other
// than ASCII letters, digits, '-' and '_' become one '-', a leading and a
// trailing '-' are dropped, the result is lowercased and '-' becomes '_'.
// So "Customers" is "customers", "FooBar" is "foobar" (case is folded, not
// split), "My-Domain" is "my_domain".
//
// Protean first transliterates non-ASCII letters to their ASCII base
// ("é" to "e"); that needs Unicode decomposition tables, so a non-ASCII
// name is an error here rather than a guess that might name other streams.
// A name with nothing left after normalization is an error too.
func NormalizedName(domain string) (string, error) {
	for i := 0; i < len(domain); i++ {
		if domain[i] >= utf8.RuneSelf {
			return "", fmt.Errorf("domain name %q is not ASCII: Protean transliterates such names, Laneway does not guess; use the ASCII spelling Protean's domain has", domain)
		}
	}
	var b strings.Builder
	sep := false // the last byte written is a '-' standing for a run
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		keep := c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !keep {
			c = '-'
		}
		if c == '-' {
			// Protean collapses every run of separators, including '-'
			// written by the user, into one.
			if sep {
				continue
			}
			sep = true
		} else {
			sep = false
		}
		b.WriteByte(c)
	}
	s := strings.TrimSuffix(strings.TrimPrefix(b.String(), "-"), "-")
	s = strings.ReplaceAll(strings.ToLower(s), "-", "_")
	if s == "" {
		return "", fmt.Errorf("domain name %q has no letters or digits to name streams with", domain)
	}
	return s, nil
}
