package bf16

import (
	"math"
	"testing"
)

func TestRounding(t *testing.T) {
	cases := []struct {
		in   float32
		want float32
	}{
		{1, 1},
		{1 + 1.0/256, 1},                  // halfway, even is 1.0
		{1 + 3.0/256, 1 + 4.0/256},        // halfway, rounds up to even
		{1 + 1.0/256 + 1e-7, 1 + 1.0/128}, // just above halfway
		{-2.75, -2.75},
		{float32(math.Inf(-1)), float32(math.Inf(-1))},
		{math.MaxFloat32, float32(math.Inf(1))}, // overflows
	}
	for _, c := range cases {
		if got := ToFloat32(FromFloat32(c.in)); got != c.want {
			t.Errorf("bf16(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := ToFloat32(FromFloat32(float32(math.NaN()))); !math.IsNaN(float64(got)) {
		t.Errorf("NaN → %v", got)
	}
	if got := FromFloat32(math.Float32frombits(0xffc00001)); got != 0xffc0 {
		t.Errorf("negative NaN → %#04x, want 0xffc0 (sign and quiet bit kept)", got)
	}
	if got := FromFloat32(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("signalling NaN with a low payload → %#04x, want a NaN (it must not round to Inf)", got)
	}
}

// TestToFloat32Exact: every bfloat16 bit pattern widens to a float32 that rounds back to the same bits.
func TestToFloat32Exact(t *testing.T) {
	for h := range 1 << 16 {
		b := uint16(h)
		f := ToFloat32(b)
		if math.Float32bits(f) != uint32(b)<<16 {
			t.Fatalf("%#04x widens to %#08x", b, math.Float32bits(f))
		}
		if got := FromFloat32(f); got != b && !(math.IsNaN(float64(f)) && got == b|0x0040) {
			t.Fatalf("%#04x → %v → %#04x", b, f, got)
		}
	}
}
