package flatjson

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

type flat struct {
	ID      string  `json:"id"`
	Seq     int     `json:"seq"`
	Small   int8    `json:"small,omitempty"`
	Count   uint16  `json:"count"`
	Ratio   float64 `json:"ratio"`
	Narrow  float32 `json:"narrow"`
	OK      bool    `json:"ok"`
	Data    []byte  `json:"data"`
	Name    string
	ignored string //nolint:unused // unexported: encoding/json skips it
	Skip    string `json:"-"`
}

// same is the property: wherever Decode succeeds, json.Unmarshal succeeds
// with the same value.
func same(t *rapid.T, p *Plan, data []byte) {
	var fast flat
	ok := p.Decode(data, &fast)
	var slow flat
	err := json.Unmarshal(data, &slow)
	if ok {
		if err != nil {
			t.Fatalf("Decode took %q, json.Unmarshal refused it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("Decode(%q) = %+v, json.Unmarshal = %+v", data, fast, slow)
		}
	}
}

func genFlat() *rapid.Generator[flat] {
	return rapid.Custom(func(t *rapid.T) flat {
		return flat{
			ID:    rapid.String().Draw(t, "id"),
			Seq:   rapid.Int().Draw(t, "seq"),
			Small: rapid.Int8().Draw(t, "small"),
			Count: rapid.Uint16().Draw(t, "count"),
			// Finite: JSON has no NaN or infinity.
			Ratio:  rapid.Float64Range(-math.MaxFloat64, math.MaxFloat64).Draw(t, "ratio"),
			Narrow: rapid.Float32Range(-math.MaxFloat32, math.MaxFloat32).Draw(t, "narrow"),
			OK:     rapid.Bool().Draw(t, "ok"),
			Data:   rapid.SliceOf(rapid.Byte()).Draw(t, "data"),
			Name:   rapid.StringMatching(`[a-z]{0,8}`).Draw(t, "name"),
		}
	})
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	p := Compile(reflect.TypeFor[flat]())
	require.NotNil(t, p)
	rapid.Check(t, func(t *rapid.T) {
		v := genFlat().Draw(t, "v")
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %+v: %v", v, err)
		}
		same(t, p, data)
		// Whatever encoding/json wrote, and the engine writes, is taken.
		if !strings.Contains(string(data), `\`) {
			var got flat
			if !p.Decode(data, &got) {
				t.Fatalf("Decode refused the marshalled %q", data)
			}
		}
		// Damaged copies: never accepted where encoding/json disagrees.
		for i := range rapid.IntRange(1, 4).Draw(t, "edits") {
			b := []byte(string(data))
			pos := rapid.IntRange(0, len(b)).Draw(t, "pos"+string(rune('a'+i)))
			ins := rapid.SampledFrom([]string{"", " ", "\t", "\\", `"`, ",", ":", "{", "}", "0", "-", "+",
				".", "e", "1", "n", "null", "true", "A", "\x01", "\xff", "é", `,"extra":1`, `,"ID":"x"`}).Draw(t, "ins"+string(rune('a'+i)))
			cut := rapid.IntRange(0, min(3, len(b)-pos)).Draw(t, "cut"+string(rune('a'+i)))
			b = append(b[:pos:pos], append([]byte(ins), b[pos+cut:]...)...)
			same(t, p, b)
		}
	})
}

func TestDecodeFallsBack(t *testing.T) {
	p := Compile(reflect.TypeFor[flat]())
	for _, in := range []string{
		`{"id":"a\"b"}`,      // escape
		`{"ID":"x"}`,         // case-insensitive match: encoding/json's rule
		`{"other":1}`,        // unknown member
		`{"seq":1.5}`,        // a conversion error
		`{"small":300}`,      // overflow
		`{"count":-1}`,       // negative into unsigned
		`{"data":"!!"}`,      // bad base64
		`{"ok":"true"}`,      // wrong type
		`{"seq":01}`,         // not JSON
		`{"seq":+1}`,         // not JSON
		`{"id":"x"} trailer`, // trailing data
		`null`,               // not an object
		`{"id":"x",}`,
	} {
		var v flat
		assert.False(t, p.Decode([]byte(in), &v), in)
	}
	var v flat
	require.True(t, p.Decode([]byte(` { "id" : "é" , "seq":-0, "ratio":1e-3, "data":null, "ok":true } `), &v))
	assert.Equal(t, flat{ID: "é", Ratio: 0.001, OK: true}, v)
}

type custom struct{ N int }

func (c *custom) UnmarshalJSON([]byte) error { return nil }

type withTime struct {
	At json.Number `json:"at"`
}

type nested struct {
	Inner struct{ N int } `json:"inner"`
}

type embedded struct {
	flat
	Extra int
}

type asString struct {
	N int `json:"n,string"`
}

type folded struct {
	Name string `json:"name"`
	NAME string `json:"NAME"`
}

func TestCompileRefusesWhatIsNotFlat(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[custom](), reflect.TypeFor[withTime](), reflect.TypeFor[nested](),
		reflect.TypeFor[embedded](), reflect.TypeFor[asString](), reflect.TypeFor[folded](),
		reflect.TypeFor[map[string]any](), reflect.TypeFor[[]int](),
	} {
		assert.Nil(t, Compile(typ), typ.String())
	}
	var nilPlan *Plan
	assert.False(t, nilPlan.Decode([]byte(`{}`), &flat{}))
}

func BenchmarkDecode(b *testing.B) {
	data, err := json.Marshal(flat{ID: "customer-123", Seq: 42, Data: make([]byte, 256), Name: "n"})
	require.NoError(b, err)
	p := Compile(reflect.TypeFor[flat]())
	b.Run("flatjson", func(b *testing.B) {
		for range b.N {
			var v flat
			if !p.Decode(data, &v) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for range b.N {
			var v flat
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
