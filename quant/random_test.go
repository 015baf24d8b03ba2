package quant

import (
	"math"
	"slices"
	"testing"
)

// Random weights are reproducible from the seed, differ between seeds, and dequantize to values inside
// the absmax range they were drawn with.
func TestRandom(t *testing.T) {
	shape := []int{96, 200} // 19,200 elements: 300 blocks, a partial nested block
	const scale = 0.1
	a, err := Random(shape, 7, scale)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Random(shape, 7, scale)
	c, _ := Random(shape, 8, scale)
	if !slices.Equal(a.Codes, b.Codes) || !slices.Equal(a.QAbsmax, b.QAbsmax) {
		t.Error("same seed gave different weights")
	}
	if slices.Equal(a.Codes, c.Codes) {
		t.Error("seeds 7 and 8 gave the same codes")
	}
	w := a.Dequantize()
	var big float64
	for _, v := range w {
		big = max(big, math.Abs(float64(v)))
	}
	// The largest |value| is the largest absmax (NF4's ±1 levels), below scale up to the absmax's 8-bit code.
	if big < scale/2 || big > scale*1.02 {
		t.Errorf("largest |value| %g, want in [%g, %g]", big, scale/2, scale*1.02)
	}
	if _, err := Random([]int{4}, 1, scale); err == nil {
		t.Error("a 1-d shape was accepted")
	}
	if _, err := Random(shape, 1, 0); err == nil {
		t.Error("scale 0 was accepted")
	}
}
