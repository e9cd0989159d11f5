// Package plainbytes skips the plain bytes of a JSON string eight at a
// time. Most of an entry's bytes are inside strings (a base64 payload
// above all), and almost all of them are plain: printable ASCII other than
// '"' and '\'. The decoders' byte loops then look only at the bytes from
// the word that stopped the skip. Short strings (metadata keys and values)
// are better read byte by byte: for them a word's tests cost more than
// they save.
package plainbytes

import "encoding/binary"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// anyZeroByte reports whether a byte of x is 0 (exact for "any").
func anyZeroByte(x uint64) bool {
	return (x-ones)&^x&highs != 0
}

// plainWord reports whether all eight bytes of x are in 0x20-0x7e and none
// is '"' or '\'.
func plainWord(x uint64) bool {
	below := (x - 0x20*ones) &^ x & highs // a byte < 0x20
	above := ((x + ones) | x) & highs     // a byte >= 0x7f
	return below|above == 0 && !anyZeroByte(x^('"'*ones)) && !anyZeroByte(x^('\\'*ones))
}

// Skip skips plain bytes from i. It returns an index at or before the
// first byte that is not plain: up to 7 bytes before it, or before the end
// of b. The caller checks every byte from there.
func Skip(b []byte, i int) int {
	for i+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[i:])) {
		i += 8
	}
	return i
}
