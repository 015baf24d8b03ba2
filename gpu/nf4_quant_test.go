package gpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/quant"
)

// quantRandom quantizes a random normal [rows, cols] matrix with quant.Quantize.
func quantRandom(t *testing.T, rng *rand.Rand, rows, cols int) *quant.Weight {
	t.Helper()
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.02)
	}
	w, err := quant.Quantize(x, []int{rows, cols})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDequantNF4CPUMatchesQuant: the GPU kernel's CPU twin computes exactly quant's Dequantize.
func TestDequantNF4CPUMatchesQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][2]int{{64, 256}, {96, 200}, {7, 10}} {
		w := quantRandom(t, rng, s[0], s[1])
		h, err := NF4HostFromQuant(w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DequantNF4CPU(h)
		if err != nil {
			t.Fatal(err)
		}
		want := w.Dequantize()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v element %d: %g, quant says %g", s, i, got[i], want[i])
			}
		}
	}
}
