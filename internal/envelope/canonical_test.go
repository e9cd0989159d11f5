package envelope

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The want and sha columns were produced by Python 3.11 (testdata/gen_golden.py):
// json.dumps(json.loads(in), sort_keys=True, separators=(",", ":"), ensure_ascii=True).
var canonicalGolden = []struct {
	in, want, sha string
}{
	{in: `{"b":1,"a":2}`, want: `{"a":2,"b":1}`, sha: "d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772"},
	{in: `{ "z" : [ 3 , 2 , { "y" : null , "x" : true } ] , "a" : false }`, want: `{"a":false,"z":[3,2,{"x":true,"y":null}]}`, sha: "a8eedfb69fbfc5c9438c1a7a506503289f875f08289c7f12d667b6994cb0ddbd"},
	{in: `{"empty_obj":{},"empty_arr":[],"nested":{"b":{"d":1,"c":2},"a":[{}]}}`, want: `{"empty_arr":[],"empty_obj":{},"nested":{"a":[{}],"b":{"c":2,"d":1}}}`, sha: "9ca640df4dd4a12914d0a2fccb99531b09962a6f8e9855cdad3aa6010faf4bbf"},
	{in: `{"name":"José","emoji":"😀","cjk":"日本"}`, want: `{"cjk":"\u65e5\u672c","emoji":"\ud83d\ude00","name":"Jos\u00e9"}`, sha: "9462a28da87e12c5e31f7ee57e13c561648ddab299c4893e82082b561c254d27"},
	{in: `{"s":"\u00e9 and \u00E9 and \u65e5"}`, want: `{"s":"\u00e9 and \u00e9 and \u65e5"}`, sha: "feae1089cb48a99b278c3dc9eab8a5484c08551631a2edecff7ac57a364fee64"},
	{in: `{"ctl":"\u0000\u0001\u001f\u007f\n\r\t\b\f\"\\\/ /"}`, want: `{"ctl":"\u0000\u0001\u001f\u007f\n\r\t\b\f\"\\/ /"}`, sha: "a6b4cfe10d03b0b09de513ec9471977b5936e2f8dd638c026fd7a59838e8110c"},
	// Literal (unescaped) DEL, NBSP, LINE SEPARATOR, BOM and U+FFFF in the input.
	{in: "{\"del\":\"\x7f\",\"nbsp\":\"\u00a0\",\"ls\":\"\u2028\",\"bom\":\"\ufeff\",\"max\":\"\uffff\"}", want: `{"bom":"\ufeff","del":"\u007f","ls":"\u2028","max":"\uffff","nbsp":"\u00a0"}`, sha: "0c9fe294ffdc9ddfe6af590c3f19ca0fa2800ea33e5a9389baca4319338b58cc"},
	{in: `{"lone_high":"\ud800","lone_low":"\udc00x","high_then_ascii":"\ud800\u0041","pair":"\ud83d\ude00","upper_pair":"\uD83D\uDE00","two_highs":"\ud800\ud83d\ude00","low_high":"\udc00\ud800"}`, want: `{"high_then_ascii":"\ud800A","lone_high":"\ud800","lone_low":"\udc00x","low_high":"\udc00\ud800","pair":"\ud83d\ude00","two_highs":"\ud800\ud83d\ude00","upper_pair":"\ud83d\ude00"}`, sha: "636b25342154de1a33a1563eb48d9357615907293ebf498243363e7e2d80b391"},
	// Key order is by code point: a lone surrogate sorts before U+E000, and
	// astral characters after U+FFFF (UTF-16 order would differ).
	{in: "{\"a\":1,\"B\":2,\"\u00e9\":3,\"\U0001F600\":4,\"\ue000\":5,\"\\ud800\":6,\"ab\":7,\"a\\u0000\":8,\"\":9,\"\uffff\":10,\"\U00010000\":11}", want: `{"":9,"B":2,"a":1,"a\u0000":8,"ab":7,"\u00e9":3,"\ud800":6,"\ue000":5,"\uffff":10,"\ud800\udc00":11,"\ud83d\ude00":4}`, sha: "df584d170c509cef059144316dcb3e6e0965c46e8fda1eacce1c786cc09ebd02"},
	{in: `{"ints":[1,-1,0,-0,12345678901234567890123456789,-98765432109876543210]}`, want: `{"ints":[1,-1,0,0,12345678901234567890123456789,-98765432109876543210]}`, sha: "06ccd3cc40bdc47d89ca0bc45ac4e9a1e4256e40440d1083186a15394c9ee421"},
	{in: `{"floats":[1.0,-0.0,0.0,1e16,1E16,1.5e-05,0.0001,0.00001,123456789012345680.0,1e-400,-1e-400]}`, want: `{"floats":[1.0,-0.0,0.0,1e+16,1e+16,1.5e-05,0.0001,1e-05,1.2345678901234568e+17,0.0,-0.0]}`, sha: "1eebebe6884ad5c42bd0933f427a9984f0b82672f174af4697bf5d945c43326c"},
	{in: `{"floats2":[1.7976931348623157e308,5e-324,0.1,0.30000000000000004,100.0,1e15,9999999999999998.0,1e22,2.5E+3,-1.25e-7,1E-4,1e-5,0.5,3.14159,1e+16,12345.678e-3]}`, want: `{"floats2":[1.7976931348623157e+308,5e-324,0.1,0.30000000000000004,100.0,1000000000000000.0,9999999999999998.0,1e+22,2500.0,-1.25e-07,0.0001,1e-05,0.5,3.14159,1e+16,12.345678]}`, sha: "bc19b030eb75f0e7bc75592ee6c12404074af2c9db9edea7b41ff27a221db90f"},
	{in: `{"floats3":[1.00000000000000000e+16,9007199254740993.0,2.2250738585072014e-308,4.9e-324,1e308,123e-20,1.0e0,0.000123456789]}`, want: `{"floats3":[1e+16,9007199254740992.0,2.2250738585072014e-308,5e-324,1e+308,1.23e-18,1.0,0.000123456789]}`, sha: "1184ec466a7742156690f6351bae95f636af49bf7778a585c5a1867e20aeac02"},
	{in: `{"a":1,"a":2}`, want: `{"a":2}`, sha: "7e8059f495589fcd981232cc11d00b00da3802c01d688fa1cf1f6bed6e5bb33c"},
	{in: `{"a":{"x":1},"\u0061":3}`, want: `{"a":3}`, sha: "70778ce01ad8d1a82c80a3500bee476f34651238edeb936c4a7b0161b1395169"},
	{in: `{"t":true,"f":false,"n":null}`, want: `{"f":false,"n":null,"t":true}`, sha: "22e00dc2f7b01420f940fbdbfbdf34fa0667cc6500186495023ba37722cbd05e"},
	{in: " \t\n\r{\n  \"k\" : \"v\"\r\n}\t ", want: `{"k":"v"}`, sha: "666c1aa02e8068c6d5cc1d3295009432c16790bec28ec8ce119d0d1a18d61319"},
	{in: `[1,"two",{"b":2,"a":1},[],null]`, want: `[1,"two",{"a":1,"b":2},[],null]`, sha: "ae2817a3e70db32639b204e862236740d62b8b34b01ffe245c63cdd1947f94d7"},
	{in: `"just a string \u00e9"`, want: `"just a string \u00e9"`, sha: "7d0fed9640429448d6ee3d76dc06301f470b61289f0c5b7d1b5a9ac7fa3e8837"},
	{in: `3`, want: `3`, sha: "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"},
	{in: `-0`, want: `0`, sha: "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9"},
	{in: `-0.0`, want: `-0.0`, sha: "c26617c7ccbcaa6631b45d851b8cf56e21d2ca624bdb1193afdbd4b560702cec"},
	{in: `{"url":"http://example.com/a/b?c=d&e=<f>"}`, want: `{"url":"http://example.com/a/b?c=d&e=<f>"}`, sha: "580b15b115eabbe2f5dd667deca38f727db89ac65b22f1f6d49cbdbfd3623963"},
	{in: `{"deep":[[[[[[[[[[{"k":[[[[[1]]]]]}]]]]]]]]]]}`, want: `{"deep":[[[[[[[[[[{"k":[[[[[1]]]]]}]]]]]]]]]]}`, sha: "a193ff565dac2b869088b10631ab82ebb427af91eca47b944429559f332ed8cb"},
}

func TestCanonicalMatchesPython(t *testing.T) {
	t.Parallel()
	for _, tc := range canonicalGolden {
		got, err := Canonical(json.RawMessage(tc.in))
		require.NoError(t, err, "input %q", tc.in)
		require.Equal(t, tc.want, string(got), "canonical form of %q (-want +got)", tc.in)

		sum, err := Checksum(json.RawMessage(tc.in))
		require.NoError(t, err)
		require.Equal(t, tc.sha, sum, "checksum of %q", tc.in)
	}
}

// TestFloatReprMatchesPython checks several thousand floats (random bit
// patterns, random short decimals, and every power of ten near the format
// switch points) against Python's json.dumps(json.loads(x)).
func TestFloatReprMatchesPython(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/python_float_repr.txt")
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		in, want, ok := strings.Cut(sc.Text(), " ")
		require.True(t, ok, "bad golden line %q", sc.Text())
		got, err := Canonical(json.RawMessage(in))
		require.NoError(t, err, "input %s", in)
		require.Equal(t, want, string(got), "repr of %s", in)
		n++
	}
	require.NoError(t, sc.Err())
	require.Greater(t, n, 4000, "golden file looks truncated")
}

func TestCanonicalRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", ``, "unexpected end of input"},
		{"garbage", `hello`, "unexpected character"},
		{"NaN", `{"x":NaN}`, "unexpected character"},
		{"Infinity", `{"x":Infinity}`, "unexpected character"},
		{"negative Infinity", `{"x":-Infinity}`, "invalid number"},
		{"float overflow", `{"x":1e400}`, "does not fit a float64"},
		{"trailing comma object", `{"a":1,}`, "expected a string key"},
		{"trailing comma array", `[1,]`, "unexpected character"},
		{"leading zero", `01`, "unexpected data after"},
		{"bare dot", `1.`, "no digits after '.'"},
		{"bare exponent", `1e`, "no digits in the exponent"},
		{"raw control char", "\"a\x01b\"", "control character"},
		{"raw newline", "\"a\nb\"", "control character"},
		{"bad escape", `"\x"`, "invalid escape"},
		{"short unicode escape", `"\u12"`, "invalid \\u escape"},
		{"bad second half escape", `"\ud800\uZZZZ"`, "invalid \\u escape"},
		{"unterminated string", `"abc`, "unterminated string"},
		{"unterminated after backslash", `"abc\`, "unterminated string"},
		{"unterminated object", `{"a":1`, "unexpected end of input in an object"},
		{"two values", `{} {}`, "unexpected data after"},
		{"single quotes", `{'a':1}`, "expected a string key"},
		{"invalid UTF-8", "\"\xff\"", "not valid UTF-8"},
		{"encoded surrogate", "\"\xed\xa0\x80\"", "not valid UTF-8"},
		{"too deep", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "nesting deeper"},
		{"bad literal", `tru`, "expected true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Canonical(json.RawMessage(tc.in))
			require.ErrorContains(t, err, tc.wantErr)
			_, err = Checksum(json.RawMessage(tc.in))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestCanonicalDepthLimitIsInclusive(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	got, err := Canonical(json.RawMessage(in))
	require.NoError(t, err)
	require.Equal(t, in, string(got))
}
