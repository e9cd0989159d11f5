package plainbytes

import (
	"testing"

	"pgregory.net/rapid"
)

func isPlain(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }

// Skip skips only plain bytes, and stops within the word holding the
// first byte that is not plain.
func TestSkip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Mostly plain bytes, with the boundary values around each class.
		special := []byte{0x00, 0x1f, 0x20, '"', '\\', 0x7e, 0x7f, 0x80, 0xfe, 0xff, '!', '#', '[', ']'}
		b := rapid.SliceOfN(rapid.OneOf(
			rapid.ByteRange(0x20, 0x7e),
			rapid.ByteRange(0x20, 0x7e),
			rapid.SampledFrom(special),
		), 0, 64).Draw(t, "b")
		i := rapid.IntRange(0, len(b)).Draw(t, "i")
		got := Skip(b, i)
		first := i
		for first < len(b) && isPlain(b[first]) {
			first++
		}
		if got < i || got > first {
			t.Fatalf("Skip(%q, %d) = %d, first non-plain at %d", b, i, got, first)
		}
		if first-got >= 8 {
			t.Fatalf("Skip(%q, %d) = %d stopped a whole word before %d", b, i, got, first)
		}
	})
}

// Every single byte value in every position of a word is classified.
func TestSkipEachByte(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got := Skip(w, 0) == 8; got != isPlain(byte(c)) {
				t.Fatalf("byte %#x at %d: plain word %v", c, pos, got)
			}
		}
	}
}
